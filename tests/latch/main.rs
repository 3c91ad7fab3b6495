//! The one integration-test binary: the real `latch` executable and an in-process platform on
//! 127.0.0.1:0 with a temporary database.

#![allow(
    clippy::format_collect,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    clippy::many_single_char_names
)]

mod broker;
mod byok;
mod careful;
mod cli;
mod encodings;
mod launcher;
mod manage;
mod operations;
mod output;
mod privilege;
mod recipes;
mod replicas;
mod seal;
mod server;
mod web;
mod webapp;
mod webapp_http;
