//! Helpers shared by the black-box conformance tests.
