//! The service layer over a real catalog: listings in pages, search, access requests.

mod backup;
mod lease;
mod policies;
mod listing;
mod requests;
mod search;
mod tags;
