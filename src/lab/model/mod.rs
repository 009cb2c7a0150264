//! The lab's model, plain data at the bottom of its layers: what a claim is measured on
//! ([`Subject`]), the eras of CPython's lock ([`Era`]), the one table every run fills
//! ([`Measurements`]), verdicts and the rules that give them, a claim in each era
//! ([`eras`]) and what an experiment found ([`outcome`]). Nothing here runs anything.

pub mod cores;
mod era;
pub mod eras;
pub mod health;
pub mod outcome;
mod subject;
pub(crate) mod table;
pub mod verdict;

pub use era::Era;
pub use subject::{Subject, SubjectKind};
pub use table::{Measurement, Measurements, TableError};
