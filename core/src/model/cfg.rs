//! Darknet cfg parser: text in, [`Network`] out, without allocating.
//!
//! Supported sections: `[net]`/`[network]` (must come first; `width`, `height`, `channels`),
//! `[convolutional]`/`[conv]`, `[maxpool]`/`[max]`, `[route]`, `[reorg]` and `[region]`.
//! Comments start with `#` or `;` (anywhere on a line); whitespace around keys, `=` and values
//! is ignored; list values are comma separated.
//!
//! The parser is lenient with keys and strict with values: keys it does not use (training
//! options such as `momentum`, `jitter`, `*_scale`, …) are ignored, but every value it uses must
//! parse and lie in range, a used key may appear only once per section, and keys that would change
//! the meaning of a layer in a way Tessera does not model (`groups`≠1, `dilation`≠1, `binary`,
//! `xnor`, `stride_x`, `stride_y`, `reverse`) are rejected.
//!
//! Defaults follow Darknet: conv `size=1`, `stride=1`, `pad=0`, `padding=0`,
//! `batch_normalize=0`; maxpool `stride=1`, `size=stride`, `padding=size−1`; reorg `stride=1`;
//! region `classes=20`, `coords=4`, `num=1`, `softmax=0`, `thresh=0.5`. Required: `[net]`
//! `width`, `height`, `channels`; conv `filters` and `activation` (Darknet's default, `logistic`,
//! is not supported); route `layers`; region `anchors`.
//!
//! Limits (anything outside is [`CfgErrorKind::OutOfRange`]): input sides 1..=16384, input
//! channels and conv filters 1..=65536, kernel and window sizes and strides 1..=64, paddings
//! 0..=64, region `classes` 1..=10000, `num` 1..=16, `coords` = 4, `thresh` in `[0, 1]`,
//! anchors finite and positive.

use core::fmt;

use heapless::Vec;

use super::layer::MAX_ANCHORS;
use super::network::{MAX_LAYERS, MAX_ROUTE_INPUTS};
use super::{
    Activation, Conv, LayerKind, MaxPool, Network, RegionParams, Reorg, Route, Shape, ShapeError,
};

const MAX_SIDE: u32 = 16384;
const MAX_FILTERS: u32 = 65536;
const MAX_KERNEL: u32 = 64;
const MAX_PADDING: u32 = 64;
const MAX_CLASSES: u32 = 10000;
const MAX_ANCHOR_VALUES: usize = 2 * MAX_ANCHORS;

/// A cfg parse error: what went wrong and on which line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CfgError {
    /// 1-based line number: the offending key line, or the section header for errors about a
    /// whole section (missing keys, shape inference).
    pub line: u32,
    /// What went wrong.
    pub kind: CfgErrorKind,
}

/// What is wrong with a cfg.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CfgErrorKind {
    /// A line is neither a comment, a `[section]` header nor a `key=value` pair.
    Syntax,
    /// A section name Tessera does not know.
    UnknownSection,
    /// The first section is not `[net]`/`[network]` (or there is none, or a key precedes it).
    NetMissing,
    /// A second `[net]`/`[network]` section.
    DuplicateNet,
    /// The cfg describes no layer.
    NoLayers,
    /// A used key appears twice in one section.
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A required key is absent from its section.
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A value is not a number (or a list element is not).
    BadNumber {
        /// The key.
        key: &'static str,
    },
    /// A value parses but is zero, negative, not finite or absurdly large.
    OutOfRange {
        /// The key.
        key: &'static str,
    },
    /// An activation other than `leaky` or `linear`.
    UnknownActivation,
    /// A key whose value asks for a feature Tessera does not model (e.g. `groups=2`).
    Unsupported {
        /// The key.
        key: &'static str,
    },
    /// The number of anchor values is not `2·num`.
    AnchorCount {
        /// `2·num`.
        expected: u32,
        /// Values given.
        found: u32,
    },
    /// A route lists more than [`MAX_ROUTE_INPUTS`] layers.
    TooManyRouteInputs,
    /// A route source resolves before layer 0 or at/after the route itself.
    RouteOutOfRange {
        /// The resolved absolute index.
        index: i64,
    },
    /// The region's input channels are not `num·(coords + 1 + classes)`.
    RegionChannels {
        /// `num·(coords + 1 + classes)` (saturated at `u32::MAX`).
        expected: u32,
        /// Channels of the region's input.
        found: u32,
    },
    /// More than [`MAX_LAYERS`] layers.
    TooManyLayers,
    /// Shape inference rejected the layer.
    Shape(ShapeError),
}

impl fmt::Display for CfgErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CfgErrorKind::Syntax => f.write_str("expected `[section]` or `key=value`"),
            CfgErrorKind::UnknownSection => f.write_str("unknown section"),
            CfgErrorKind::NetMissing => f.write_str("the cfg must start with a [net] section"),
            CfgErrorKind::DuplicateNet => f.write_str("second [net] section"),
            CfgErrorKind::NoLayers => f.write_str("no layers"),
            CfgErrorKind::DuplicateKey { key } => write!(f, "`{key}` given twice"),
            CfgErrorKind::MissingKey { key } => write!(f, "missing `{key}`"),
            CfgErrorKind::BadNumber { key } => write!(f, "`{key}` is not a valid number"),
            CfgErrorKind::OutOfRange { key } => write!(f, "`{key}` is out of range"),
            CfgErrorKind::UnknownActivation => {
                f.write_str("unsupported activation (expected leaky or linear)")
            }
            CfgErrorKind::Unsupported { key } => write!(f, "unsupported `{key}` value"),
            CfgErrorKind::AnchorCount { expected, found } => {
                write!(
                    f,
                    "expected {expected} anchor values (2·num), found {found}"
                )
            }
            CfgErrorKind::TooManyRouteInputs => {
                write!(f, "a route takes at most {MAX_ROUTE_INPUTS} layers")
            }
            CfgErrorKind::RouteOutOfRange { index } => {
                write!(f, "route source {index} is not an earlier layer")
            }
            CfgErrorKind::RegionChannels { expected, found } => write!(
                f,
                "region expects {expected} input channels (num·(coords+1+classes)), got {found}"
            ),
            CfgErrorKind::TooManyLayers => write!(f, "more than {MAX_LAYERS} layers"),
            CfgErrorKind::Shape(e) => write!(f, "shape inference: {e}"),
        }
    }
}

impl fmt::Display for CfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl core::error::Error for CfgError {}

const fn err(line: u32, kind: CfgErrorKind) -> CfgError {
    CfgError { line, kind }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Net,
    Conv,
    MaxPool,
    Route,
    Reorg,
    Region,
}

impl Section {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "net" | "network" => Section::Net,
            "convolutional" | "conv" => Section::Conv,
            "maxpool" | "max" => Section::MaxPool,
            "route" => Section::Route,
            "reorg" => Section::Reorg,
            "region" => Section::Region,
            _ => return None,
        })
    }
}

/// A value with the line it came from.
#[derive(Clone, Copy, Debug)]
struct Val<T> {
    v: T,
    line: u32,
}

/// Anchor values as given (the first [`MAX_ANCHOR_VALUES`]) and how many there were.
#[derive(Clone, Debug, Default)]
struct Anchors {
    values: Vec<f32, MAX_ANCHOR_VALUES>,
    count: u32,
}

/// Keys seen in the current section.
#[derive(Clone, Debug, Default)]
struct Keys {
    width: Option<Val<u32>>,
    height: Option<Val<u32>>,
    channels: Option<Val<u32>>,
    filters: Option<Val<u32>>,
    size: Option<Val<u32>>,
    stride: Option<Val<u32>>,
    pad: Option<Val<u32>>,
    padding: Option<Val<u32>>,
    batch_normalize: Option<Val<u32>>,
    activation: Option<Val<Activation>>,
    layers: Option<Val<Vec<i32, MAX_ROUTE_INPUTS>>>,
    anchors: Option<Val<Anchors>>,
    classes: Option<Val<u32>>,
    coords: Option<Val<u32>>,
    num: Option<Val<u32>>,
    softmax: Option<Val<u32>>,
    thresh: Option<Val<f32>>,
}

fn put<T>(slot: &mut Option<Val<T>>, key: &'static str, v: T, line: u32) -> Result<(), CfgError> {
    if slot.is_some() {
        return Err(err(line, CfgErrorKind::DuplicateKey { key }));
    }
    *slot = Some(Val { v, line });
    Ok(())
}

fn uint(key: &'static str, value: &str, line: u32, min: u32, max: u32) -> Result<u32, CfgError> {
    let v: u32 = value
        .parse()
        .map_err(|_| err(line, CfgErrorKind::BadNumber { key }))?;
    if v < min || v > max {
        return Err(err(line, CfgErrorKind::OutOfRange { key }));
    }
    Ok(v)
}

fn real(key: &'static str, value: &str, line: u32) -> Result<f32, CfgError> {
    let v: f32 = value
        .parse()
        .map_err(|_| err(line, CfgErrorKind::BadNumber { key }))?;
    if !v.is_finite() {
        return Err(err(line, CfgErrorKind::OutOfRange { key }));
    }
    Ok(v)
}

/// Rejects `key` unless its value is the integer `neutral`.
fn only(key: &'static str, value: &str, line: u32, neutral: u32) -> Result<(), CfgError> {
    let v: u32 = value
        .parse()
        .map_err(|_| err(line, CfgErrorKind::BadNumber { key }))?;
    if v == neutral {
        Ok(())
    } else {
        Err(err(line, CfgErrorKind::Unsupported { key }))
    }
}

fn route_list(value: &str, line: u32) -> Result<Vec<i32, MAX_ROUTE_INPUTS>, CfgError> {
    const KEY: &str = "layers";
    let mut out = Vec::new();
    for item in value.split(',') {
        let v: i32 = item
            .trim()
            .parse()
            .map_err(|_| err(line, CfgErrorKind::BadNumber { key: KEY }))?;
        out.push(v)
            .map_err(|_| err(line, CfgErrorKind::TooManyRouteInputs))?;
    }
    Ok(out)
}

fn anchor_list(value: &str, line: u32) -> Result<Anchors, CfgError> {
    const KEY: &str = "anchors";
    let mut out = Anchors::default();
    for item in value.split(',') {
        let v = real(KEY, item.trim(), line)?;
        if v <= 0.0 {
            return Err(err(line, CfgErrorKind::OutOfRange { key: KEY }));
        }
        // Values past capacity are only counted: the count check reports them.
        let _ = out.values.push(v);
        out.count = out.count.saturating_add(1);
    }
    Ok(out)
}

impl Keys {
    /// Records one `key=value` of section `sec`; unknown keys are ignored.
    fn apply(&mut self, sec: Section, key: &str, value: &str, line: u32) -> Result<(), CfgError> {
        use Section as S;
        match (sec, key) {
            (S::Net, "width") => put(
                &mut self.width,
                "width",
                uint("width", value, line, 1, MAX_SIDE)?,
                line,
            ),
            (S::Net, "height") => put(
                &mut self.height,
                "height",
                uint("height", value, line, 1, MAX_SIDE)?,
                line,
            ),
            (S::Net, "channels") => put(
                &mut self.channels,
                "channels",
                uint("channels", value, line, 1, MAX_FILTERS)?,
                line,
            ),
            (S::Conv, "filters") => put(
                &mut self.filters,
                "filters",
                uint("filters", value, line, 1, MAX_FILTERS)?,
                line,
            ),
            (S::Conv | S::MaxPool, "size") => put(
                &mut self.size,
                "size",
                uint("size", value, line, 1, MAX_KERNEL)?,
                line,
            ),
            (S::Conv | S::MaxPool | S::Reorg, "stride") => put(
                &mut self.stride,
                "stride",
                uint("stride", value, line, 1, MAX_KERNEL)?,
                line,
            ),
            (S::Conv, "pad") => put(&mut self.pad, "pad", uint("pad", value, line, 0, 1)?, line),
            (S::Conv | S::MaxPool, "padding") => put(
                &mut self.padding,
                "padding",
                uint("padding", value, line, 0, MAX_PADDING)?,
                line,
            ),
            (S::Conv, "batch_normalize") => put(
                &mut self.batch_normalize,
                "batch_normalize",
                uint("batch_normalize", value, line, 0, 1)?,
                line,
            ),
            (S::Conv, "activation") => {
                let a = match value {
                    "leaky" => Activation::Leaky,
                    "linear" => Activation::Linear,
                    _ => return Err(err(line, CfgErrorKind::UnknownActivation)),
                };
                put(&mut self.activation, "activation", a, line)
            }
            (S::Conv, "groups") => only("groups", value, line, 1),
            (S::Conv, "dilation") => only("dilation", value, line, 1),
            (S::Conv, "binary") => only("binary", value, line, 0),
            (S::Conv, "xnor") => only("xnor", value, line, 0),
            (S::Conv | S::MaxPool, "stride_x") => {
                Err(err(line, CfgErrorKind::Unsupported { key: "stride_x" }))
            }
            (S::Conv | S::MaxPool, "stride_y") => {
                Err(err(line, CfgErrorKind::Unsupported { key: "stride_y" }))
            }
            (S::Route, "layers") => put(&mut self.layers, "layers", route_list(value, line)?, line),
            (S::Route, "groups") => only("groups", value, line, 1),
            (S::Reorg, "reverse") => only("reverse", value, line, 0),
            (S::Region, "anchors") => put(
                &mut self.anchors,
                "anchors",
                anchor_list(value, line)?,
                line,
            ),
            (S::Region, "classes") => put(
                &mut self.classes,
                "classes",
                uint("classes", value, line, 1, MAX_CLASSES)?,
                line,
            ),
            (S::Region, "coords") => put(
                &mut self.coords,
                "coords",
                uint("coords", value, line, 4, 4)?,
                line,
            ),
            (S::Region, "num") => put(
                &mut self.num,
                "num",
                uint("num", value, line, 1, MAX_ANCHORS as u32)?,
                line,
            ),
            (S::Region, "softmax") => put(
                &mut self.softmax,
                "softmax",
                uint("softmax", value, line, 0, 1)?,
                line,
            ),
            (S::Region, "thresh") => {
                let t = real("thresh", value, line)?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(err(line, CfgErrorKind::OutOfRange { key: "thresh" }));
                }
                put(&mut self.thresh, "thresh", t, line)
            }
            _ => Ok(()),
        }
    }
}

fn required<T: Clone>(
    slot: &Option<Val<T>>,
    key: &'static str,
    section_line: u32,
) -> Result<T, CfgError> {
    slot.as_ref()
        .map(|v| v.v.clone())
        .ok_or(err(section_line, CfgErrorKind::MissingKey { key }))
}

fn or<T: Copy>(slot: &Option<Val<T>>, default: T) -> T {
    slot.as_ref().map_or(default, |v| v.v)
}

/// Builds the layer of a finished non-`[net]` section from its keys.
fn layer(sec: Section, k: &Keys, net: &Network, line: u32) -> Result<LayerKind, CfgError> {
    Ok(match sec {
        Section::Net => return Err(err(line, CfgErrorKind::DuplicateNet)),
        Section::Conv => {
            let size = or(&k.size, 1);
            let pad = if or(&k.pad, 0) != 0 {
                size / 2
            } else {
                or(&k.padding, 0)
            };
            LayerKind::Conv(Conv {
                filters: required(&k.filters, "filters", line)?,
                size,
                stride: or(&k.stride, 1),
                pad,
                batch_norm: or(&k.batch_normalize, 0) != 0,
                activation: required(&k.activation, "activation", line)?,
            })
        }
        Section::MaxPool => {
            let stride = or(&k.stride, 1);
            let size = or(&k.size, stride);
            LayerKind::MaxPool(MaxPool {
                size,
                stride,
                pad: or(&k.padding, size - 1),
            })
        }
        Section::Route => {
            let list = k
                .layers
                .as_ref()
                .ok_or(err(line, CfgErrorKind::MissingKey { key: "layers" }))?;
            let here = net.layers().len() as i64;
            let mut layers = Vec::new();
            for &rel in list.v.iter() {
                let rel = i64::from(rel);
                let index = if rel < 0 { here + rel } else { rel };
                let abs = u16::try_from(index)
                    .ok()
                    .filter(|&i| i64::from(i) < here)
                    .ok_or(err(list.line, CfgErrorKind::RouteOutOfRange { index }))?;
                layers
                    .push(abs)
                    .map_err(|_| err(list.line, CfgErrorKind::TooManyRouteInputs))?;
            }
            LayerKind::Route(Route { layers })
        }
        Section::Reorg => LayerKind::Reorg(Reorg {
            stride: or(&k.stride, 1),
        }),
        Section::Region => {
            let anchors = k
                .anchors
                .as_ref()
                .ok_or(err(line, CfgErrorKind::MissingKey { key: "anchors" }))?;
            let num = or(&k.num, 1);
            let classes = or(&k.classes, 20);
            let coords = or(&k.coords, 4);
            if anchors.v.count != 2 * num {
                return Err(err(
                    anchors.line,
                    CfgErrorKind::AnchorCount {
                        expected: 2 * num,
                        found: anchors.v.count,
                    },
                ));
            }
            let expected = coords
                .checked_add(1)
                .and_then(|x| x.checked_add(classes))
                .and_then(|x| x.checked_mul(num))
                .unwrap_or(u32::MAX);
            let found = net.output().c;
            if expected != found {
                return Err(err(line, CfgErrorKind::RegionChannels { expected, found }));
            }
            let mut pairs = Vec::new();
            for pair in anchors.v.values.chunks_exact(2) {
                if let [w, h] = *pair {
                    pairs.push((w, h)).map_err(|_| {
                        err(anchors.line, CfgErrorKind::OutOfRange { key: "anchors" })
                    })?;
                }
            }
            LayerKind::Region(RegionParams {
                classes,
                coords,
                num,
                anchors: pairs,
                softmax: or(&k.softmax, 0) != 0,
                thresh: or(&k.thresh, 0.5),
            })
        }
    })
}

/// Parser state between lines.
struct Parser {
    net: Option<Network>,
    /// The open section and its header line.
    section: Option<(Section, u32)>,
    keys: Keys,
}

impl Parser {
    /// Closes the open section: creates the network or appends a layer.
    fn finish_section(&mut self) -> Result<(), CfgError> {
        let Some((sec, line)) = self.section.take() else {
            return Ok(());
        };
        let keys = core::mem::take(&mut self.keys);
        if sec == Section::Net {
            let shape = Shape::new(
                required(&keys.width, "width", line)?,
                required(&keys.height, "height", line)?,
                required(&keys.channels, "channels", line)?,
            );
            let net = Network::new(shape).map_err(|e| err(line, CfgErrorKind::Shape(e)))?;
            self.net = Some(net);
            return Ok(());
        }
        let net = self
            .net
            .as_mut()
            .ok_or(err(line, CfgErrorKind::NetMissing))?;
        if net.layers().len() >= MAX_LAYERS {
            return Err(err(line, CfgErrorKind::TooManyLayers));
        }
        let kind = layer(sec, &keys, net, line)?;
        net.push(kind)
            .map_err(|e| err(line, CfgErrorKind::Shape(e)))?;
        Ok(())
    }

    fn line(&mut self, raw: &str, line: u32) -> Result<(), CfgError> {
        let text = raw.split(['#', ';']).next().unwrap_or("").trim();
        if text.is_empty() {
            return Ok(());
        }
        if let Some(rest) = text.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or(err(line, CfgErrorKind::Syntax))?
                .trim();
            let sec = Section::from_name(name).ok_or(err(line, CfgErrorKind::UnknownSection))?;
            let first = self.net.is_none() && self.section.is_none();
            match (first, sec == Section::Net) {
                (true, false) => return Err(err(line, CfgErrorKind::NetMissing)),
                (false, true) => return Err(err(line, CfgErrorKind::DuplicateNet)),
                _ => {}
            }
            self.finish_section()?;
            self.section = Some((sec, line));
            return Ok(());
        }
        let (key, value) = text
            .split_once('=')
            .ok_or(err(line, CfgErrorKind::Syntax))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(err(line, CfgErrorKind::Syntax));
        }
        let (sec, _) = self.section.ok_or(err(line, CfgErrorKind::NetMissing))?;
        self.keys.apply(sec, key, value, line)
    }
}

/// Parses a Darknet cfg into a [`Network`] with inferred shapes (see the module docs for the
/// accepted sections, keys, defaults and limits).
///
/// Route sources are resolved to absolute layer indices (negative values count back from the
/// route's own index). Errors carry the 1-based line of the offending key, or of the section
/// header when the problem concerns the whole section.
pub fn parse(text: &str) -> Result<Network, CfgError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        net: None,
        section: None,
        keys: Keys::default(),
    };
    let mut last = 0u32;
    for (i, raw) in text.lines().enumerate() {
        last = u32::try_from(i).map_or(u32::MAX, |i| i.saturating_add(1));
        p.line(raw, last)?;
    }
    p.finish_section()?;
    let net = p.net.ok_or(err(last.max(1), CfgErrorKind::NetMissing))?;
    if net.layers().is_empty() {
        return Err(err(last.max(1), CfgErrorKind::NoLayers));
    }
    Ok(net)
}
