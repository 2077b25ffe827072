//! A reverse proxy in front of the relay that can be told to break the fetch-readable stream:
//! while broken, every `.frames` request has its connection dropped without an answer (the
//! browser's `fetch()` rejects with a network error), and everything else passes through,
//! streamed. This is what a middlebox that mishandles long responses looks like to a page.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct BreakingProxy {
    pub addr: SocketAddr,
    broken: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl BreakingProxy {
    /// Proxies a free loopback port to `backend`; `.frames` broken from the start if `broken`.
    pub async fn start(backend: SocketAddr, broken: bool) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let broken = Arc::new(AtomicBool::new(broken));
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let flag = broken.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (client, flag) = (client.clone(), flag.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        let (client, flag) = (client.clone(), flag.clone());
                        async move {
                            if flag.load(Ordering::SeqCst) && req.uri().path().ends_with(".frames")
                            {
                                return Err(anyhow::anyhow!("broken on purpose"));
                            }
                            let path = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_else(|| "/".into());
                            *req.uri_mut() = format!("http://{backend}{path}").parse()?;
                            let resp: Response<Incoming> = client.request(req).await?;
                            Ok::<_, anyhow::Error>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(BreakingProxy { addr, broken, task })
    }

    /// Lets `.frames` through again.
    pub fn heal(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

impl Drop for BreakingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
