//! The service layer over a real catalog: listings in pages.

mod backup;
mod lease;
mod listing;
mod tags;
