//! The lab's model: what a claim is measured on ([`Subject`]), the eras of CPython's lock
//! ([`Era`]), and the one table every run fills ([`Measurements`]). Nothing here runs
//! anything; verdicts, fidelity and the eras table are read from the table.

mod era;
mod subject;
mod table;

pub use era::Era;
pub use subject::{Subject, SubjectKind};
pub use table::{Measurement, Measurements, TableError};
