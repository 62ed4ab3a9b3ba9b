//! A private Redis Cluster on loopback: three primaries with one replica each
//! (six `redis-server --cluster-enabled yes`, joined by `redis-cli --cluster
//! create`), with a short `cluster-node-timeout` so a failover takes a second or two.
//!
//! [`RedisCluster::shared`] is started once per test binary and shared by the
//! tests that only read and write (each isolates itself by names, see
//! `support::prefixed`); a test that kills or reshards nodes starts its own with
//! [`RedisCluster::start`], stopped when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::redis_server::{self, ping};
use super::{free_port, temp_dir, wait_until};

const INSTALL_HINT: &str = "redis-server and redis-cli are required by this test and were not found on PATH: \
install them (Debian/Ubuntu: `apt-get install -y redis-server`, which brings redis-cli; macOS: `brew install redis`) \
or run `.ci/run`, which installs them";

/// Node timeout of the test clusters: a dead primary is failed over about a
/// second or two after it stops answering.
const NODE_TIMEOUT_MS: u64 = 1000;

/// One node of a test cluster.
struct Node {
    child: Option<Child>,
    port: u16,
    bus: u16,
    dir: PathBuf,
}

/// A Redis Cluster of three primaries with one replica each.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

/// A node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    /// The primary's id, for a replica.
    pub replica_of: Option<String>,
    pub failed: bool,
    /// Slot ranges it serves (a primary).
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// The cluster the tests of this binary share, started on first use and
    /// stopped when the binary exits (a watchdog kills its nodes then).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = RedisCluster::start();
            cluster.watch_parent();
            cluster
        })
    }

    /// Starts a fresh cluster of six nodes and waits until it serves every slot.
    pub fn start() -> Self {
        let dir = temp_dir("cluster");
        let mut nodes = Vec::new();
        for i in 0..6 {
            nodes.push(start_node(&dir.join(format!("node-{i}"))));
        }
        let cluster = RedisCluster { nodes, dir };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} (redis-cli: {e})"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// `redis+cluster://` with the three primaries as seed nodes.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node's port, live or not.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} (redis-cli: {e})"));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A live node's port, to ask about the cluster.
    fn any_live(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port
    }

    /// The cluster as a live node sees it (`CLUSTER NODES`).
    pub fn topology(&self) -> Vec<NodeInfo> {
        parse_nodes(&self.cli(self.any_live(), &["CLUSTER", "NODES"]))
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        self.cli(self.any_live(), &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The port of the primary serving `slot`, as the cluster sees it now.
    pub fn owner_of(&self, slot: u16) -> Option<u16> {
        self.topology()
            .into_iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
            })
            .map(|n| n.port)
    }

    /// The port of a replica of the primary on `port`.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let nodes = self.topology();
        let primary = nodes.iter().find(|n| n.port == port)?.id.clone();
        nodes
            .iter()
            .find(|n| n.replica_of.as_deref() == Some(&primary))
            .map(|n| n.port)
    }

    /// Kills the node on `port` (SIGKILL, as a crash would).
    pub fn kill(&mut self, port: u16) {
        let node = self.node(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node on `port` again, with its cluster config: it rejoins.
    pub fn restart(&mut self, port: u16) {
        let node = self.node(port);
        assert!(node.child.is_none(), "node {port} is running");
        let (dir, bus) = (node.dir.clone(), node.bus);
        node.child = Some(spawn(port, bus, &dir));
        wait_until(Duration::from_secs(10), "the node answers again", || {
            ping(port)
        });
    }

    fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Waits until every live node says the cluster is ok, every slot is served
    /// and every live replica is in sync with its primary.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let healthy = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = self.cli(n.port, &["CLUSTER", "INFO"]);
                let replication = self.cli(n.port, &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster was not healthy within {within:?}: {:#?}",
                self.topology()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A synchronous cluster connection, for checks from the test.
    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        redis::cluster::ClusterClient::new(seeds)
            .and_then(|c| c.get_connection())
            .expect("connect to the test cluster")
    }

    /// Kills every node once this test process is gone, for the shared cluster,
    /// which lives in a static and is never dropped.
    fn watch_parent(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| c.id().to_string()))
            .collect();
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
            parent = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.display(),
        );
        // Started in the background of a shell that exits at once, so the
        // watchdog is nobody's child here and outlives this process.
        let started = Command::new("sh")
            .args(["-c", &format!("({script}) </dev/null >/dev/null 2>&1 &")])
            .status()
            .expect("start the cluster's watchdog");
        assert!(started.success(), "the cluster's watchdog did not start");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts one cluster-enabled node in `dir` on free ports, retrying a port race.
fn start_node(dir: &std::path::Path) -> Node {
    std::fs::create_dir_all(dir).expect("create the node's folder");
    for _ in 0..5 {
        let (port, bus) = (free_port(), free_port());
        if port == bus {
            continue;
        }
        let mut child = spawn(port, bus, dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if ping(port) {
                return Node {
                    child: Some(child),
                    port,
                    bus,
                    dir: dir.to_path_buf(),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(dir.join("nodes.conf"));
    }
    panic!("a cluster node did not start on free ports after 5 tries");
}

fn spawn(port: u16, bus: u16, dir: &std::path::Path) -> Child {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus.to_string(),
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    redis_server::spawn(port, dir, &args.map(str::to_string))
}

/// Reads `CLUSTER NODES`.
fn parse_nodes(text: &str) -> Vec<NodeInfo> {
    let mut by_id = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let port = fields[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let flags = fields[2];
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|n| (n, n)),
            })
            .collect();
        by_id.insert(
            fields[0].to_string(),
            NodeInfo {
                id: fields[0].to_string(),
                port,
                primary: flags.contains("master"),
                replica_of: (fields[3] != "-").then(|| fields[3].to_string()),
                failed: flags.contains("fail") && !flags.contains("fail?"),
                slots,
            },
        );
    }
    by_id.into_values().collect()
}
