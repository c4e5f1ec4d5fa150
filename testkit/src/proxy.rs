//! A small forward proxy on 127.0.0.1 for tests of clients behind one: HTTP `CONNECT` (plain, or
//! over TLS for an `https://` proxy) and SOCKS5 without authentication. It resolves a table of
//! names that only it knows (as a corporate proxy resolves internal names the client cannot),
//! tunnels bytes both ways, and records every tunnel it opened.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How clients talk to the proxy.
#[derive(Clone)]
pub enum ProxyKind {
    /// `http://`: `CONNECT host:port` in plain text.
    Http,
    /// `https://`: TLS to the proxy (with this server config), then `CONNECT`.
    Https(Arc<rustls::ServerConfig>),
    /// `socks5://`: SOCKS version 5, no authentication, `CONNECT` only.
    Socks5,
}

impl ProxyKind {
    fn scheme(&self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https(_) => "https",
            ProxyKind::Socks5 => "socks5",
        }
    }
}

/// A running proxy (stops when dropped).
pub struct TestProxy {
    addr: SocketAddr,
    scheme: &'static str,
    tunnels: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the connection handlers share.
#[derive(Clone)]
struct Shared {
    names: Arc<HashMap<String, IpAddr>>,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// Starts a proxy on 127.0.0.1 that resolves `names` itself (other names through the
    /// system resolver).
    pub async fn start(kind: ProxyKind, names: &[(&str, IpAddr)]) -> anyhow::Result<TestProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the test proxy")?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            names: Arc::new(
                names
                    .iter()
                    .map(|(name, ip)| (name.to_ascii_lowercase(), *ip))
                    .collect(),
            ),
            tunnels: Arc::default(),
        };
        let tunnels = shared.tunnels.clone();
        let scheme = kind.scheme();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kind, shared) = (kind.clone(), shared.clone());
                tokio::spawn(async move {
                    // A client that goes away mid-handshake is not the proxy's problem.
                    let _ = serve(kind, shared, stream).await;
                });
            }
        });
        Ok(TestProxy {
            addr,
            scheme,
            tunnels,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, `https://...` or `socks5://...`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `host:port` of every tunnel opened, in order.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

async fn serve(kind: ProxyKind, shared: Shared, stream: TcpStream) -> anyhow::Result<()> {
    match kind {
        ProxyKind::Http => http_connect(&shared, stream).await,
        ProxyKind::Https(config) => {
            let tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(stream)
                .await?;
            http_connect(&shared, tls).await
        }
        ProxyKind::Socks5 => socks5(&shared, stream).await,
    }
}

impl Shared {
    /// Opens the upstream connection of a tunnel to `host:port` and records it.
    async fn open(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let address = match self.names.get(&host.to_ascii_lowercase()) {
            Some(ip) => SocketAddr::new(*ip, port),
            None => match host.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                Err(_) => tokio::net::lookup_host((host, port))
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("cannot resolve {host}")))?,
            },
        };
        let upstream = TcpStream::connect(address).await?;
        self.tunnels.lock().unwrap().push(format!("{host}:{port}"));
        Ok(upstream)
    }
}

/// `CONNECT host:port HTTP/1.1`, answered `200 Connection established`, then the tunnel.
async fn http_connect<S>(shared: &Shared, mut client: S) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line, so nothing of the tunnelled bytes is read here.
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 16 * 1024, "request head too long");
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next(), words.next());
    let parsed = target
        .and_then(|t| t.rsplit_once(':'))
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|port| (h.to_string(), port)));
    let (Some("CONNECT"), Some((host, port))) = (method, parsed) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut upstream = match shared.open(&host, port).await {
        Ok(upstream) => upstream,
        Err(_) => {
            client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// RFC 1928: greeting (no authentication), `CONNECT` to an IPv4, IPv6 or domain address.
async fn socks5(shared: &Shared, mut client: TcpStream) -> anyhow::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    anyhow::ensure!(greeting[0] == 5, "not SOCKS5");
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            IpAddr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            IpAddr::from(ip).to_string()
        }
        3 => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length).await?;
            let mut name = vec![0u8; usize::from(length[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    if request[1] != 1 {
        // Only CONNECT: "command not supported".
        client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    }
    let mut upstream = match shared.open(&host, u16::from_be_bytes(port)).await {
        Ok(upstream) => upstream,
        Err(_) => {
            // "host unreachable".
            client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
