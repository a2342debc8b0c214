//! The webhook corpus: manifest loading, signing each payload the vendor's way, and
//! comparing a stored CI event with the manifest's `expect` block.
