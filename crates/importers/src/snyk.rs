//! snyk

use crate::{ImportError, ParsedScan};

pub(crate) fn parse(_input: &[u8]) -> Result<ParsedScan, ImportError> {
    Err(ImportError::Empty)
}
