//! Run the fake on 127.0.0.1 and write a clouds.yaml for it, to poke at it by hand:
//! `cargo run -p triad-openstack-fake --example serve -- /tmp/clouds.yaml`, then
//! `OS_CLIENT_CONFIG_FILE=/tmp/clouds.yaml OS_CLOUD=fake openstack loadbalancer list`.

use triad_openstack_fake::{FakeCloud, FakeOptions};

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "clouds.yaml".into());
    let fake = FakeCloud::start(FakeOptions::default()).await;
    std::fs::write(&path, fake.clouds_yaml("fake")).expect("write clouds.yaml");
    println!(
        "fake cloud on {}; clouds.yaml at {path}; Ctrl-C to stop",
        fake.addr
    );
    let _ = tokio::signal::ctrl_c().await;
}
