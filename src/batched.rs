//! Gathers what concurrent tasks ask of the database into one statement: each task asks and
//! waits for its own answer; whatever was asked while one statement ran goes into the next.
//! Under load one round trip (and one commit) serves many requests; when idle each request goes
//! at once, with no added delay. Used by the worker (recipient reads, delivery outcomes) and by
//! sign-ups (group commit).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

type Reply<A> = oneshot::Sender<Result<A, SharedError>>;

pub struct Batched<Q, A> {
    queue: mpsc::Sender<(Q, Reply<A>)>,
}

impl<Q, A> Clone for Batched<Q, A> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<Q: Send + 'static, A: Send + 'static> Batched<Q, A> {
    /// Starts the task that runs `answer` over up to `max_batch` requests at a time; it must
    /// give one answer per request, in order. The task ends when every clone is dropped, after
    /// answering what it was asked.
    pub fn start<F, Fut>(max_batch: usize, answer: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<Vec<A>>> + Send,
    {
        Self::start_many(max_batch, 1, answer)
    }

    /// As `start`, with `consumers` tasks (at least one) taking turns at the queue: while one
    /// statement runs, the next task gathers what arrives and runs its own, so up to
    /// `consumers` statements (database connections) are busy at once.
    pub fn start_many<F, Fut>(max_batch: usize, consumers: usize, answer: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<Vec<A>>> + Send,
    {
        let (queue, asked) = mpsc::channel::<(Q, Reply<A>)>(max_batch * 4);
        let asked = Arc::new(tokio::sync::Mutex::new(asked));
        let answer = Arc::new(answer);
        for _ in 0..consumers.max(1) {
            let (asked, answer) = (Arc::clone(&asked), Arc::clone(&answer));
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(max_batch);
                loop {
                    // The turn at the queue ends as soon as something was taken.
                    if asked.lock().await.recv_many(&mut batch, max_batch).await == 0 {
                        break;
                    }
                    let (requests, replies): (Vec<Q>, Vec<Reply<A>>) = batch.drain(..).unzip();
                    let count = requests.len();
                    match answer(requests).await {
                        Ok(answers) if answers.len() == count => {
                            for (reply, a) in replies.into_iter().zip(answers) {
                                let _ = reply.send(Ok(a));
                            }
                        }
                        Ok(answers) => {
                            let e =
                                anyhow::anyhow!("{} answers to {count} requests", answers.len());
                            send_error(replies, e);
                        }
                        Err(e) => send_error(replies, e),
                    }
                }
            });
        }
        Self { queue }
    }

    /// Asks and waits for the answer.
    pub async fn ask(&self, request: Q) -> anyhow::Result<A> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the batching task has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the batching task dropped a request"))?
            .map_err(anyhow::Error::new)
    }
}

fn send_error<A>(replies: Vec<Reply<A>>, e: anyhow::Error) {
    let shared = Arc::new(e);
    for reply in replies {
        let _ = reply.send(Err(SharedError(Arc::clone(&shared))));
    }
}

/// One error answered to every request of a batch; its cause chain stays walkable (so a lost
/// database connection is still recognised as one).
#[derive(Debug)]
pub struct SharedError(Arc<anyhow::Error>);

impl SharedError {
    pub fn new(e: Arc<anyhow::Error>) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn requests_made_while_a_batch_runs_go_together_into_the_next_and_each_gets_its_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let doubled = {
            let (sizes, gate) = (Arc::clone(&sizes), Arc::clone(&gate));
            Batched::start(100, move |requests: Vec<u32>| {
                let (sizes, gate) = (Arc::clone(&sizes), Arc::clone(&gate));
                async move {
                    sizes.lock().unwrap().push(requests.len());
                    gate.acquire().await?.forget();
                    Ok(requests.iter().map(|n| n * 2).collect())
                }
            })
        };
        let first = tokio::spawn({
            let doubled = doubled.clone();
            async move { doubled.ask(1).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=20)
            .map(|n| {
                let doubled = doubled.clone();
                tokio::spawn(async move { doubled.ask(n).await })
            })
            .collect();
        while doubled.queue.capacity() > doubled.queue.max_capacity() - 19 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 2);
        for (n, asked) in (2..=20).zip(rest) {
            assert_eq!(asked.await.unwrap().unwrap(), n * 2);
        }
        assert_eq!(*sizes.lock().unwrap(), [1, 19]);
    }

    #[tokio::test]
    async fn with_two_consumers_a_second_batch_runs_while_the_first_is_held() {
        let running = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let doubled = {
            let (running, gate) = (Arc::clone(&running), Arc::clone(&gate));
            Batched::start_many(100, 2, move |requests: Vec<u32>| {
                let (running, gate) = (Arc::clone(&running), Arc::clone(&gate));
                async move {
                    running.lock().unwrap().push(requests.clone());
                    gate.acquire().await?.forget();
                    Ok(requests.iter().map(|n| n * 2).collect())
                }
            })
        };
        let ask = |n: u32| {
            let doubled = doubled.clone();
            tokio::spawn(async move { doubled.ask(n).await })
        };
        let first = ask(1);
        while running.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let second = ask(2);
        while running.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *running.lock().unwrap(),
            [vec![1], vec![2]],
            "both held at once"
        );
        // A third waits for a free consumer.
        let third = ask(3);
        tokio::task::yield_now().await;
        assert_eq!(running.lock().unwrap().len(), 2);
        gate.add_permits(3);
        assert_eq!(first.await.unwrap().unwrap(), 2);
        assert_eq!(second.await.unwrap().unwrap(), 4);
        assert_eq!(third.await.unwrap().unwrap(), 6);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_request_with_its_cause_still_recognisable() {
        let failing: Batched<u32, u32> = Batched::start(10, |_| async {
            Err(anyhow::Error::new(sqlx::Error::PoolTimedOut).context("reading subscribers"))
        });
        let e = failing.ask(7).await.unwrap_err();
        assert!(e.to_string().contains("reading subscribers"), "{e:#}");
        assert!(crate::store::is_unavailable(&e));
    }
}
