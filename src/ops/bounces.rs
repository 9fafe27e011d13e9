//! Bounce and complaint reports as staff read them, page by page (they are recorded by
//! `bounce::record`).

pub use crate::store::bounces::{list, Filter, ReportView};
