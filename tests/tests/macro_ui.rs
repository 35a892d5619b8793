//! Every misuse of `#[remote]` fails to compile with a short error on the offending tokens.

#[test]
fn misuses_are_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
