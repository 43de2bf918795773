//! The compute thread (std): runs a node's jobs off its network loop, so a victim answers
//! steal requests while it computes, and wakes the loop when a job is done.
//!
//! A coded worker runs both of its stages on one such thread
//! ([`ThreadExecutor::with_shards`]): its fused tiles and its coded-tail shards queue on one
//! channel and take turns, so the tile buffers ([`Workspace`]), the kernels' thread-local
//! scratch and the thread's stack serve both instead of being held twice (a 5x5 YOLOv2 worker
//! held 1.3 MiB of kernel scratch on a second thread, and a band buffer besides).

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tessera_core::kernel::Kernels;

use super::compute::{execute_in, Done, Executor, Job, Model, ModelError, Workspace};
use super::readiness::Wake;
use crate::coded::{CodedModel, ShardDone, ShardJob, ThreadShards, CONV_BAND_BYTES};

/// Runs `f` with `pad` as the calling thread's padded-input scratch of the FMA kernels
/// (`kernels::with_pad_lent`); without them, nothing to lend.
fn lent_pad<T>(pad: &mut Vec<f32>, f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "simd")]
    {
        crate::kernels::with_pad_lent(pad, f)
    }
    #[cfg(not(feature = "simd"))]
    {
        let _ = pad;
        f()
    }
}

/// Kernels a compute thread readies for its model's parameters when its first tile job comes
/// (a deferred model's loads them then): a Winograd kernel transforms its filters once there
/// instead of in every tile's call.
pub trait ForModel: Kernels + Sized {
    /// These kernels for `model`, whose parameters are loaded.
    fn for_model(&self, model: &Arc<Model>) -> Result<Self, ModelError>;
}

impl ForModel for tessera_core::kernel::Portable {
    fn for_model(&self, _: &Arc<Model>) -> Result<Self, ModelError> {
        Ok(*self)
    }
}

/// Readies `kernels` for `model` (loaded) unless done (`ready`). A model whose weights do not
/// view keeps the kernels as they are: its jobs fail on their own.
fn ready_for<K: ForModel>(kernels: &mut K, model: &Arc<Model>, ready: &mut bool) {
    if *ready {
        return;
    }
    if let Ok(k) = kernels.for_model(model) {
        *kernels = k;
    }
    *ready = true;
}

/// A job of a compute thread: a fused tile (or BODP layer) or a coded shard.
pub(crate) enum Task {
    /// Through the node's [`Executor`].
    Tile(Job),
    /// Through the node's coded part's shard executor.
    Shard(Arc<CodedModel>, ShardJob),
}

/// Joins the compute thread when the last handle of it is dropped (each handle drops its
/// job sender first, so the thread's queue is closed by then and it ends after its job).
pub(crate) struct Joiner(Mutex<Option<JoinHandle<()>>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        let handle = self.0.get_mut().ok().and_then(Option::take);
        if let Some(t) = handle {
            let _ = t.join();
        }
    }
}

/// Where a tile job's result goes.
type TileDone = Sender<Result<Done, ModelError>>;

/// What the thread serves: the tile side (kernels, model, results), the shard side
/// (kernels, results, the flag that drops queued shards), or both.
struct Sides<KT, KS> {
    tiles: Option<(KT, Arc<Model>, TileDone)>,
    shards: Option<(KS, Sender<ShardDone>, Arc<AtomicBool>)>,
}

/// Sleeps `(slowdown − 1) ×` the time since `t0` (a straggler), in short steps while `stop`
/// (if any) stays unset.
fn straggle(t0: Instant, slowdown: f64, stop: Option<&AtomicBool>) {
    if slowdown <= 1.0 {
        return;
    }
    let until = t0 + t0.elapsed().mul_f64(slowdown);
    match stop {
        None => std::thread::sleep(until.saturating_duration_since(Instant::now())),
        Some(stop) => {
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Spawns a compute thread named `name` serving `sides`; returns its job sender and joiner.
fn spawn<KT, KS>(
    name: &str,
    sides: Sides<KT, KS>,
    slowdown: f64,
    wake: Option<Wake>,
) -> std::io::Result<(Sender<Task>, Arc<Joiner>)>
where
    KT: ForModel + Send + 'static,
    KS: Kernels + Send + 'static,
{
    let (jobs, rx) = mpsc::channel::<Task>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let Sides { mut tiles, shards } = sides;
            // Sized once for the worst tile, when the first job comes (a gateway may never
            // compute); a model the plan rejects fails each tile job instead. A shard borrows
            // its band buffer from it: the two kinds of job never run at once.
            let mut ws: Option<Workspace> = None;
            // Without a tile side (a thread of shards only): a shard's result and band buffers.
            let mut own: (Vec<f32>, Vec<f32>) = Default::default();
            // The tile kernels are readied by the first tile job, off the node's loop (a
            // gateway that never computes a tile never holds what they prepare).
            let mut ready = false;
            // Jobs run in the order they were queued. A node starts one tile and its coded
            // part one shard at a time, so at most one of each waits: they alternate, and a
            // shard of an older frame waits for at most one tile of a newer one (and the
            // other way round).
            for task in rx {
                let t0 = Instant::now();
                match task {
                    Task::Tile(job) => {
                        let Some((kernels, model, done)) = tiles.as_mut() else {
                            continue;
                        };
                        // A deferred model's parameters are loaded by the first job.
                        let r = model.loaded().and_then(|m| {
                            *model = m;
                            ready_for(kernels, model, &mut ready);
                            execute_in(kernels, model, job, workspace(&mut ws, model))
                        });
                        straggle(t0, slowdown, None);
                        // The executor is gone: its results are of no use.
                        let _ = done.send(r);
                    }
                    Task::Shard(coded, job) => {
                        let Some((kernels, done, stop)) = shards.as_ref() else {
                            continue;
                        };
                        // A dropped shard executor (a killed device) computes no queued shard.
                        if stop.load(Ordering::Relaxed) {
                            continue;
                        }
                        let (pad, buf) = match &tiles {
                            Some((_, model, _)) => workspace(&mut ws, model).lend(),
                            None => (&mut own.0, &mut own.1),
                        };
                        // The input's allocation becomes the result (computed in place, or
                        // copied there): it is of no use once computed. The idle tile buffers
                        // hold the kernels' padded input and the bands.
                        let pad_bytes = if tiles.is_some() && !pad.is_empty() {
                            pad.len() * 4
                        } else {
                            CONV_BAND_BYTES
                        };
                        let output = lent_pad(pad, || {
                            coded.compute_shard_in(
                                kernels, job.work, job.cols, job.input, buf, pad_bytes,
                            )
                        });
                        straggle(t0, slowdown, Some(stop));
                        let _ = done.send(ShardDone {
                            work: job.work,
                            output,
                        });
                    }
                }
                if let Some(w) = &wake {
                    w.wake();
                }
            }
        })?;
    Ok((jobs, Arc::new(Joiner(Mutex::new(Some(thread))))))
}

/// Runs jobs on a dedicated thread; an optional slowdown models a straggler (each job takes
/// `slowdown` times as long: the thread sleeps `(slowdown − 1) ×` the compute time after it).
pub struct ThreadExecutor {
    jobs: Option<Sender<Task>>,
    done: Receiver<Result<Done, ModelError>>,
    /// Declared after `jobs`: the last handle of the thread joins it once its sender is gone.
    _thread: Arc<Joiner>,
}

impl ThreadExecutor {
    /// A compute thread for `model` with `kernels` ([readied](ForModel) for it on the thread);
    /// `wake` (if any) is woken after each job.
    pub fn new<K: ForModel + Send + 'static>(
        kernels: K,
        model: Arc<Model>,
        slowdown: f64,
        wake: Option<Wake>,
    ) -> std::io::Result<Self> {
        let (tx, done) = mpsc::channel();
        let sides = Sides::<K, tessera_core::kernel::Portable> {
            tiles: Some((kernels, model, tx)),
            shards: None,
        };
        let (jobs, thread) = spawn("tessera-compute", sides, slowdown, wake)?;
        Ok(ThreadExecutor {
            jobs: Some(jobs),
            done,
            _thread: thread,
        })
    }

    /// One compute thread for a coded worker's two stages: the tiles of `model` with
    /// `kernels` (this executor) and the coded-tail shards with `shard_kernels` (the
    /// [`ThreadShards`]). Jobs of both kinds take turns on it in the order they come; the
    /// slowdown applies to both. The thread ends once both handles are dropped.
    pub fn with_shards<K, KS>(
        kernels: K,
        shard_kernels: KS,
        model: Arc<Model>,
        slowdown: f64,
        wake: Option<Wake>,
    ) -> std::io::Result<(Self, ThreadShards)>
    where
        K: ForModel + Send + 'static,
        KS: Kernels + Send + 'static,
    {
        let (tile_tx, done) = mpsc::channel();
        let (shard_tx, shard_done) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let sides = Sides {
            tiles: Some((kernels, model, tile_tx)),
            shards: Some((shard_kernels, shard_tx, cancel.clone())),
        };
        let (jobs, thread) = spawn("tessera-compute", sides, slowdown, wake)?;
        let shards = ThreadShards::on_thread(jobs.clone(), shard_done, cancel, thread.clone());
        let tiles = ThreadExecutor {
            jobs: Some(jobs),
            done,
            _thread: thread,
        };
        Ok((tiles, shards))
    }
}

/// The compute thread's tile buffers, sized once for the worst tile of `model` when first
/// needed (by a tile, or by a shard borrowing them).
fn workspace<'w>(ws: &'w mut Option<Workspace>, model: &Model) -> &'w mut Workspace {
    ws.get_or_insert_with(|| Workspace::new(model).unwrap_or_default())
}

/// A thread of shards only (`ThreadShards::new`).
pub(crate) fn spawn_shards<KS: Kernels + Send + 'static>(
    kernels: KS,
    slowdown: f64,
    wake: Option<Wake>,
) -> std::io::Result<ThreadShards> {
    let (tx, done) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let sides = Sides::<tessera_core::kernel::Portable, KS> {
        tiles: None,
        shards: Some((kernels, tx, cancel.clone())),
    };
    let (jobs, thread) = spawn("tessera-coded-compute", sides, slowdown, wake)?;
    Ok(ThreadShards::on_thread(jobs, done, cancel, thread))
}

impl Executor for ThreadExecutor {
    fn start(&mut self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(Task::Tile(job));
        }
    }

    fn poll(&mut self) -> Option<Result<Done, ModelError>> {
        self.done.try_recv().ok()
    }
}

impl Drop for ThreadExecutor {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job (once the shard
        // executor sharing it is gone too); `_thread` joins it then.
        self.jobs.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coded::{Activation, LayerScheme, LinearLayer, Numeric, ShardExecutor};
    use crate::coded::{CodedModel, ConvGeom};
    use crate::driver::compute::{execute, ParamSource, Strips};
    use alloc::vec;
    use core::sync::atomic::AtomicUsize;
    use std::collections::HashSet;
    use std::thread::ThreadId;
    use tessera_core::ftp::{Mode, Partition};
    use tessera_core::kernel::{KernelError, Portable};
    use tessera_core::model::weights::{param_count, ConvParams};
    use tessera_core::model::{Conv, LayerKind, MaxPool, Network, Shape};
    use tessera_core::runtime::coded::{Protection, ShardWork};
    use tessera_core::runtime::Work;
    use tessera_core::tensor::{FeatureView, FeatureViewMut};
    use tessera_core::wire::FrameKey;
    use tessera_core::Region;
    use tessera_testkit::{conv, network};

    /// The portable kernels, noting which threads call them, for each conv whether they had
    /// been readied for a model (and for which parameters), and how often they were readied.
    #[derive(Clone, Default)]
    struct Seen {
        threads: Arc<Mutex<HashSet<ThreadId>>>,
        /// The address of the parameters readied for, once readied.
        params: Option<usize>,
        convs: Arc<Mutex<Vec<Option<usize>>>>,
        readied: Arc<AtomicUsize>,
    }

    impl Seen {
        fn note(&self) {
            self.threads
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
        }

        fn threads(&self) -> HashSet<ThreadId> {
            self.threads.lock().unwrap().clone()
        }
    }

    impl Kernels for Seen {
        fn conv(
            &self,
            conv: &Conv,
            map: Shape,
            params: &ConvParams<'_>,
            input: &FeatureView<'_>,
            out: &mut FeatureViewMut<'_>,
        ) -> Result<(), KernelError> {
            self.note();
            self.convs.lock().unwrap().push(self.params);
            Portable.conv(conv, map, params, input, out)
        }

        fn maxpool(
            &self,
            pool: &MaxPool,
            map: Shape,
            input: &FeatureView<'_>,
            out: &mut FeatureViewMut<'_>,
        ) -> Result<(), KernelError> {
            self.note();
            Portable.maxpool(pool, map, input, out)
        }
    }

    impl ForModel for Seen {
        fn for_model(&self, model: &Arc<Model>) -> Result<Self, ModelError> {
            self.readied.fetch_add(1, Ordering::SeqCst);
            Ok(Seen {
                params: Some(model.params.as_ptr() as usize),
                ..self.clone()
            })
        }
    }

    /// Runs tiles 0..4 on `exec`, each to its result (compared with the inline run's).
    fn run_tiles(exec: &mut ThreadExecutor) {
        for t in 0..4u16 {
            exec.start(tile(t));
            let done = loop {
                if let Some(d) = exec.poll() {
                    break d.unwrap();
                }
                std::thread::yield_now();
            };
            let expect = execute(&Portable, &model(), tile(t)).unwrap();
            assert_eq!(bits(&done.output), bits(&expect.output));
        }
    }

    /// A loaded model's kernels are readied once, and every conv runs on the readied kernels.
    #[test]
    fn kernels_are_readied_for_a_loaded_model_once() {
        let k = Seen::default();
        let m = model();
        let at = m.params.as_ptr() as usize;
        let mut exec = ThreadExecutor::new(k.clone(), m, 1.0, None).unwrap();
        run_tiles(&mut exec);
        assert_eq!(k.readied.load(Ordering::SeqCst), 1);
        let log = k.convs.lock().unwrap().clone();
        assert!(!log.is_empty());
        assert!(log.iter().all(|p| *p == Some(at)), "{log:?}");
    }

    /// A deferred model's kernels are readied once its first job has loaded the parameters,
    /// for those parameters (not before: there is nothing to prepare).
    #[test]
    fn kernels_are_readied_for_a_deferred_model_when_it_loads() {
        let k = Seen::default();
        let loaded = model();
        let params = loaded.params.clone();
        let source = ParamSource(Arc::new(move || Some(params.clone())));
        let m = Model::deferred(net(), 3, (2, 2), Partition::Darknet, source).unwrap();
        let empty = Some(m.params.as_ptr() as usize);
        let mut exec = ThreadExecutor::new(k.clone(), Arc::new(m), 1.0, None).unwrap();
        run_tiles(&mut exec);
        assert_eq!(k.readied.load(Ordering::SeqCst), 1);
        let log = k.convs.lock().unwrap().clone();
        let first = log[0];
        assert!(first.is_some() && first != empty, "{log:?}");
        assert!(log.iter().all(|p| *p == first), "{log:?}");
    }

    fn net() -> Network {
        let pool = LayerKind::MaxPool(MaxPool {
            size: 2,
            stride: 2,
            pad: 0,
        });
        network(Shape::new(16, 12, 3), [conv(4, 3), pool, conv(5, 3)])
    }

    fn model() -> Arc<Model> {
        let n = net();
        let params = (0..param_count(&n, 3).unwrap())
            .map(|i| 0.05 + (i % 17) as f32 / 40.0)
            .collect();
        Arc::new(Model::new(n, params, 3, (2, 2), Partition::Darknet).unwrap())
    }

    fn tile(tile: u16) -> Job {
        Job {
            work: Work::Tile {
                frame: FrameKey::new(1, 0),
                tile,
                mode: Mode::Plain,
            },
            input_region: Region::full(16, 12),
            input: Arc::new((0..16 * 12 * 3).map(|i| (i % 13) as f32 / 13.0).collect()),
            picture: None,
            strips: Strips::new(),
        }
    }

    /// A 3x3 convolution wide enough in channels to run in bands (the buffer it borrows from
    /// the tiles' workspace), as 2 data shards and a parity shard over workers 1-3.
    fn coded() -> (Arc<CodedModel>, usize, Vec<u32>) {
        let (in_len, rows) = (1024, 4);
        let geom = ConvGeom {
            size: 3,
            width: 5,
            height: 47,
        };
        let val = |i: usize, m: usize| ((i * 7919) % m) as f32 / m as f32 - 0.5;
        let layer = LinearLayer {
            in_len,
            rows,
            weights: (0..rows * in_len * 9).map(|i| val(i, 89) * 0.1).collect(),
            bias: (0..rows).map(|i| i as f32 * 0.25).collect(),
            activation: Activation::Linear,
            numeric: Numeric::Float,
        };
        let scheme = LayerScheme {
            k: 2,
            r: 1,
            protection: Protection::Coded,
        };
        let m = CodedModel::with_geometry(vec![(layer, Some(geom))], &[scheme], &[1, 2, 3]);
        let input = (0..in_len * geom.cols())
            .map(|i| val(i, 97).to_bits())
            .collect();
        (Arc::new(m.unwrap()), geom.cols(), input)
    }

    fn shard(s: u8, cols: usize, input: &[u32]) -> ShardJob {
        ShardJob {
            work: ShardWork {
                frame: FrameKey::new(1, 0),
                layer: 0,
                shard: s,
            },
            cols,
            input: input.to_vec(),
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// One thread computes a worker's tiles and shards, queued together, with the results an
    /// inline executor gives (a shard's band buffer lent by the tiles' workspace changes no
    /// bit), and nothing runs on the caller's thread.
    #[test]
    fn one_thread_computes_tiles_and_shards() {
        let seen = Seen::default();
        let (coded, cols, input) = coded();
        let (mut tiles, mut shards) =
            ThreadExecutor::with_shards(seen.clone(), seen.clone(), model(), 1.0, None).unwrap();
        for t in 0..4u16 {
            // Both kinds queued at once, in either order.
            let s = (t % 3) as u8;
            if t % 2 == 0 {
                tiles.start(tile(t));
                shards.start(&coded, shard(s, cols, &input));
            } else {
                shards.start(&coded, shard(s, cols, &input));
                tiles.start(tile(t));
            }
            let (mut done, mut out) = (None, None);
            while done.is_none() || out.is_none() {
                done = done.or_else(|| tiles.poll());
                out = out.or_else(|| shards.poll());
                std::thread::yield_now();
            }
            let done = done.unwrap().unwrap();
            let expect = execute(&Portable, &model(), tile(t)).unwrap();
            assert_eq!(done.region, expect.region);
            assert_eq!(bits(&done.output), bits(&expect.output));
            let out = out.unwrap();
            assert_eq!(out.work.shard, s);
            let expect = coded.compute_shard(out.work, cols, &input).unwrap();
            assert_eq!(out.output.unwrap(), expect, "shard {s}");
        }
        let threads = seen.threads();
        assert_eq!(threads.len(), 1, "{threads:?}");
        assert!(!threads.contains(&std::thread::current().id()));
    }

    /// Either handle dropped first, the other is still served; the thread ends with the last.
    #[test]
    fn the_thread_serves_a_handle_until_it_is_dropped() {
        let (coded, cols, input) = coded();
        let (mut tiles, shards) =
            ThreadExecutor::with_shards(Portable, Portable, model(), 1.0, None).unwrap();
        drop(shards);
        tiles.start(tile(1));
        let done = loop {
            if let Some(d) = tiles.poll() {
                break d.unwrap();
            }
            std::thread::yield_now();
        };
        assert_eq!(done.work, tile(1).work);
        let (tiles, mut shards) =
            ThreadExecutor::with_shards(Portable, Portable, model(), 1.0, None).unwrap();
        drop(tiles);
        shards.start(&coded, shard(2, cols, &input));
        let out = loop {
            if let Some(d) = shards.poll() {
                break d;
            }
            std::thread::yield_now();
        };
        assert!(out.output.is_ok());
        // Dropping the last handle joins the thread (a hang here would be a leak).
        drop(shards);
    }
}
