//! The service layer over a real catalog: listings in pages.

mod listing;
mod tags;
