//! The helper conformance suite on the age-encrypted file store (the default backend).

mod common;

conformance_tests!(common::TestHome::new);
