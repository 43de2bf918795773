//! One set of logging macros for every Tessera crate, `no_std` and without allocation:
//! [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] forward to the `log` facade with
//! feature `log` (the std binaries install a logger honouring `RUST_LOG`), to `defmt` with
//! feature `defmt` (bare metal), and compile to nothing otherwise.
//!
//! The backend is chosen once for the whole build: any crate of the build enabling
//! `tessera-log/log` (the binaries do) turns on the lines of every crate using the macros, so
//! the library crates carry no logging features of their own. With both features (an
//! `--all-features` check), `log` wins.
//!
//! The call syntax is the subset both backends share: a literal format string with positional
//! `{}` placeholders, each taking an argument that implements `Display` (no inline captures,
//! no `{:?}`, no width or precision). Under `defmt` each argument is formatted through
//! `defmt::Display2Format`; with no backend the arguments are only borrowed, so a disabled
//! line costs nothing and still uses its variables.

#![no_std]
#![forbid(unsafe_code)]

/// The backends, for the macros' expansions only.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "defmt")]
    pub use defmt;
    #[cfg(feature = "log")]
    pub use log;
}

/// Emits one line at `$level` through the backend chosen by this crate's features.
#[cfg(feature = "log")]
#[doc(hidden)]
#[macro_export]
macro_rules! __emit {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::__private::log::$level!($fmt $(, $arg)*)
    };
}

/// Emits one line at `$level` through the backend chosen by this crate's features.
#[cfg(all(feature = "defmt", not(feature = "log")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __emit {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        // defmt's expansion names `defmt::…`: this brings it into scope, so the crates using
        // the macros need no `defmt` dependency of their own.
        use $crate::__private::defmt;
        defmt::$level!($fmt $(, defmt::Display2Format(&$arg))*)
    }};
}

/// No backend: the arguments are borrowed (so they count as used) and nothing is formatted.
#[cfg(not(any(feature = "log", feature = "defmt")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __emit {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        let _ = ($(&$arg,)*);
    }};
}

/// A line for following the code path step by step (per frame, per message).
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => { $crate::__emit!(trace, $($t)*) };
}

/// A line for diagnosing a run: connections opened, dials, per-connection drops.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::__emit!(debug, $($t)*) };
}

/// A line an operator follows a run by: peers up and down, work re-dispatched.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::__emit!(info, $($t)*) };
}

/// Something went wrong and was handled: a refused peer, a fallback, a recovery.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::__emit!(warn, $($t)*) };
}

/// Something failed that the caller cannot hide: lost work, a node giving up.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::__emit!(error, $($t)*) };
}
