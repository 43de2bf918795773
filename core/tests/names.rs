//! One spelling for policies and grids: `Display` and `FromStr` are inverse, every name
//! used in files and flags parses, nothing else does.

use tessera_core::ftp::{GridShape, ParseGridError};
use tessera_core::wire::{ParsePolicyError, Policy};

#[test]
fn policies_parse_their_own_names_in_any_case() {
    let names: Vec<String> = Policy::ALL.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["wsh", "wst", "wst-s", "bodp", "modnn"]);
    for p in Policy::ALL {
        assert_eq!(p.name().parse(), Ok(p));
        assert_eq!(
            p.label().parse(),
            Ok(p),
            "the report label is the name in other case"
        );
        assert!(p.label().eq_ignore_ascii_case(p.name()));
    }
    for p in [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp] {
        assert_eq!(p.label(), p.name().to_ascii_uppercase());
    }
    assert_eq!("Wst-S".parse(), Ok(Policy::WstS));
    assert_eq!(Policy::Modnn.label(), "MoDNN", "spelt as its paper does");
}

#[test]
fn other_policy_spellings_are_refused() {
    for s in [
        "", "fifo", "wst_s", "wsts", "mo-dnn", " wsh", "wsh ", "wst-",
    ] {
        assert_eq!(s.parse::<Policy>(), Err(ParsePolicyError), "{s:?}");
    }
    assert!(ParsePolicyError.to_string().contains("wst-s"));
}

#[test]
fn grids_round_trip_through_display() {
    for (rows, cols) in [(1, 1), (3, 3), (2, 5), (8, 1)] {
        let g = GridShape::new(rows, cols);
        assert_eq!(g.to_string(), format!("{rows}x{cols}"));
        assert_eq!(g.to_string().parse(), Ok(g));
        assert_eq!(<(u32, u32)>::from(g), (rows, cols));
        assert_eq!(GridShape::from((rows, cols)), g);
    }
    assert_eq!(" 2 X 4 ".parse(), Ok(GridShape::new(2, 4)));
    // The range is the planner's to check, not the parser's.
    assert_eq!("0x9".parse(), Ok(GridShape::new(0, 9)));
}

#[test]
fn malformed_grids_name_the_bad_part() {
    assert_eq!("33".parse::<GridShape>(), Err(ParseGridError::NoSeparator));
    assert_eq!("ax3".parse::<GridShape>(), Err(ParseGridError::Rows));
    assert_eq!("-1x3".parse::<GridShape>(), Err(ParseGridError::Rows));
    assert_eq!("3x".parse::<GridShape>(), Err(ParseGridError::Cols));
    assert_eq!("3x3x3".parse::<GridShape>(), Err(ParseGridError::Cols));
    assert!(ParseGridError::Cols.to_string().contains("columns"));
}
