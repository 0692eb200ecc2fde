//! The service layer over a real catalog: listings in pages.

mod backup;
mod listing;
mod tags;
