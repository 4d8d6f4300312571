//! A component's stable address on this machine. Replicas come and go on
//! fresh ports; dependents, the gateway and `cloudport push` need one address
//! that outlives them. Each component gets a loopback listener that spreads
//! connections over its healthy replicas. A rolling deploy swaps the backend
//! list in one step: new connections go to the new replicas while the old
//! ones finish what they have, so no request fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Balancer {
    addr: SocketAddr,
    backends: Arc<RwLock<Arc<Vec<u16>>>>,
    /// Connections open now, by replica port: a replica is stopped only once
    /// its connections are done (or a drain deadline passes).
    open: Open,
    task: JoinHandle<()>,
}

type Open = Arc<Mutex<HashMap<u16, usize>>>;

impl Balancer {
    /// Listens on `port` when given and free (the address the component had
    /// before a restart), else on any free port.
    pub async fn bind(port: Option<u16>) -> std::io::Result<Balancer> {
        let mut listener = None;
        if let Some(p) = port {
            // The previous listener may still be closing; give it a moment.
            for _ in 0..10 {
                match TcpListener::bind(("127.0.0.1", p)).await {
                    Ok(l) => {
                        listener = Some(l);
                        break;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
            if listener.is_none() {
                tracing::warn!(port = p, "component address taken; choosing another");
            }
        }
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await?,
        };
        let addr = listener.local_addr()?;
        let backends: Arc<RwLock<Arc<Vec<u16>>>> = Arc::default();
        let open = Open::default();
        let task = tokio::spawn(accept(listener, backends.clone(), open.clone()));
        Ok(Balancer {
            addr,
            backends,
            open,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_backends(&self, ports: Vec<u16>) {
        *self.backends.write().unwrap() = Arc::new(ports);
    }

    /// Connections open through the address to any of `ports`.
    pub fn open_to(&self, ports: &[u16]) -> usize {
        let open = self.open.lock().unwrap();
        ports.iter().filter_map(|p| open.get(p)).sum()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, backends: Arc<RwLock<Arc<Vec<u16>>>>, open: Open) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let _ = inbound.set_nodelay(true);
        let ports = backends.read().unwrap().clone();
        let start = next.fetch_add(1, Ordering::Relaxed);
        let open = open.clone();
        tokio::spawn(async move {
            // Try each replica once, starting with the next in turn, so one
            // that just died costs a retry, not a failed request.
            for i in 0..ports.len() {
                let port = ports[(start + i) % ports.len()];
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = outbound.set_nodelay(true);
                    *open.lock().unwrap().entry(port).or_default() += 1;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    let mut open = open.lock().unwrap();
                    if let Some(n) = open.get_mut(&port) {
                        *n -= 1;
                        if *n == 0 {
                            open.remove(&port);
                        }
                    }
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(tag: u8) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&[tag]).await;
                    }
                });
            }
        });
        port
    }

    async fn ask(addr: SocketAddr) -> Option<u8> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"?").await.ok()?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        Some(b[0])
    }

    #[tokio::test]
    async fn spreads_over_replicas_skips_dead_ones_and_switches_at_once() {
        let a = echo_server(b'a').await;
        let b = echo_server(b'b').await;
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let lb = Balancer::bind(None).await.unwrap();
        lb.set_backends(vec![a, dead, b]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..9 {
            seen.insert(ask(lb.addr()).await.expect("every request answered"));
        }
        assert_eq!(seen, [b'a', b'b'].into_iter().collect());
        lb.set_backends(vec![b]);
        for _ in 0..3 {
            assert_eq!(ask(lb.addr()).await, Some(b'b'));
        }
    }

    #[tokio::test]
    async fn keeps_its_port_across_a_rebind() {
        let first = Balancer::bind(None).await.unwrap();
        let port = first.addr().port();
        drop(first);
        tokio::task::yield_now().await;
        let second = Balancer::bind(Some(port)).await.unwrap();
        assert_eq!(second.addr().port(), port);
    }
}
