//! Asynchronous events: the broadcast [`bus`] and the [`catalog`] of typed events.

pub mod bus;
pub mod catalog;

pub use bus::{Clock, EVENT_BACKLOG, EventBus, EventMessage, QmpEvent, SystemClock};
