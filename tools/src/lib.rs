//! mote host tools.
