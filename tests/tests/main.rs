//! The integration tests, one module per area, linked into one binary (see `tests/Cargo.toml`).

mod conformance;
mod e2e_avito;
mod e2e_avito_oauth;
mod e2e_channels;
mod e2e_customers;
mod e2e_email;
mod e2e_live;
mod e2e_media;
mod e2e_people;
mod e2e_routing;
mod e2e_telegram;
mod e2e_timers;
mod e2e_viber;
mod e2e_vk;
mod e2e_vk_oauth;
mod e2e_whatsapp;
mod e2e_workspace;
mod first_tenant;
mod isolation;
mod limits;
mod outbound_urls;
mod platform;
mod roles;
mod tenants;
