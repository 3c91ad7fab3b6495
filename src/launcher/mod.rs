//! The supervisor's IO side. So far: the pump that moves a stream through the scrubber, shared
//! by `latch scrub` and (next) the launcher's child pipes.

pub mod pump;
