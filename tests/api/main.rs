//! Integration tests: the real local adapter on a random port, each test on a fresh database,
//! every contract test on SQLite and on MySQL (see `helpers::on_both_backends`).

mod helpers;

mod auth_data;
mod concurrency;
mod data;
mod endpoints;
mod entity_tags;
mod expiry;
mod faults;
mod hardening;
mod lambda;
mod list;
mod protocol;
mod proxy_session;
mod quotas;
mod register;
mod routing;
mod security;
mod sessions;
mod throttling;
mod tls;
mod token;
mod upgrade;
