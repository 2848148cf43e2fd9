//! Unit states read from systemd over D-Bus, on one long-lived connection, instead of a
//! `systemctl is-active` process per look (issue 24: the agent looks at mariadb, glusterd
//! and apache2 every second; each `systemctl` costs a fork, an exec, the dynamic loader and
//! a bus connection, and those processes were most of the agent's CPU).
//!
//! The connection is the system bus (dbus-daemon), systemd's documented API, on which
//! systemd answers as `org.freedesktop.systemd1`. (Its private socket, which `systemctl`
//! uses as root, was tried first: zbus rejects the messages systemd sends there, whose
//! sender is not a bus name, and its reader task panicked.) Any failure (no bus on a minimal
//! node, a restarted dbus-daemon, a slow answer) drops the connection and answers `Err`, and
//! the caller falls back to `systemctl` for that look; the next look connects again.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// Where errors say the answer was asked.
pub const BUS: &str = "the system bus";

/// systemd's name on the bus.
const SYSTEMD: &str = "org.freedesktop.systemd1";

/// Bound on one call: a hung systemd must not stall a service loop.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Bus {
    connection: Option<zbus::Connection>,
    /// Unit name -> its object path (LoadUnit's answer; stable for the unit's name).
    paths: HashMap<String, OwnedObjectPath>,
}

static STATE: Mutex<Option<Bus>> = Mutex::const_new(None);

/// Why a look over D-Bus failed (the caller falls back to `systemctl`).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("systemd over D-Bus ({BUS}): {0}")]
    Bus(#[from] zbus::Error),
    #[error("systemd over D-Bus ({BUS}): no answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("systemd D-Bus: property {0} is not a string")]
    NotAString(String),
}

async fn connect() -> Result<zbus::Connection, BusError> {
    tokio::time::timeout(CALL_TIMEOUT, zbus::Connection::system())
        .await
        .map_err(|_| BusError::Timeout)?
        .map_err(BusError::from)
}

async fn call<B>(
    connection: &zbus::Connection,
    path: &str,
    interface: &str,
    method: &str,
    body: &B,
) -> Result<zbus::Message, BusError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    tokio::time::timeout(
        CALL_TIMEOUT,
        connection.call_method(Some(SYSTEMD), path, Some(interface), method, body),
    )
    .await
    .map_err(|_| BusError::Timeout)?
    .map_err(BusError::from)
}

/// A property of `org.freedesktop.systemd1.Unit` (`ActiveState`, `SubState`) of `unit`.
pub async fn unit_property(unit: &str, property: &str) -> Result<String, BusError> {
    let mut guard = STATE.lock().await;
    let bus = guard.get_or_insert_with(Bus::default);
    let result = look(bus, unit, property).await;
    if result.is_err() {
        // a re-exec of systemd closes the socket; the next look connects again
        bus.connection = None;
        bus.paths.clear();
    }
    result
}

async fn look(bus: &mut Bus, unit: &str, property: &str) -> Result<String, BusError> {
    if bus.connection.is_none() {
        bus.connection = Some(connect().await?);
    }
    let connection = bus.connection.as_ref().expect("connected above");
    let path = match bus.paths.get(unit) {
        Some(path) => path.clone(),
        None => {
            // LoadUnit answers a path also for a unit that is not loaded or does not exist
            // (its ActiveState is then "inactive", as `systemctl is-active` says)
            let reply = call(
                connection,
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "LoadUnit",
                &(unit,),
            )
            .await?;
            let path: OwnedObjectPath = reply.body().deserialize()?;
            bus.paths.insert(unit.to_string(), path.clone());
            path
        }
    };
    let reply = call(
        connection,
        path.as_str(),
        "org.freedesktop.DBus.Properties",
        "Get",
        &("org.freedesktop.systemd1.Unit", property),
    )
    .await?;
    let value: OwnedValue = reply.body().deserialize()?;
    String::try_from(value).map_err(|_| BusError::NotAString(property.to_string()))
}
