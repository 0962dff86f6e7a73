//! The helper conformance suite on the age-encrypted file store (the default backend).

use crate::common;

crate::conformance_tests!(common::TestHome::new);
