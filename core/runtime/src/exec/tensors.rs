//! Where each tensor's bytes are during a run, and the pool of reusable heap buffers.
//!
//! Weights are in the plan's mapping and model inputs in the caller's buffers (both found from
//! the plan's storage); a produced tensor is either in the arena (its range is the plan's
//! offset expression, evaluated) or in a heap buffer (execution-determined sizes, sub-plans).
//! Heap buffers come from, and return to, a per-session pool, so a warm session allocates
//! nothing.

/// Where a produced tensor's bytes are.
pub(crate) enum Slot {
    /// Not produced (yet, or released).
    Empty,
    /// Written into the arena (range known from the plan).
    Arena,
    /// A heap buffer (8-byte aligned words) and its byte length.
    Heap(Vec<u64>, usize),
    /// A sequence of tensors (a sequence value, or a present optional sequence).
    Seq(Vec<Item>),
    /// An optional value that holds nothing.
    Absent,
}

/// One tensor of a sequence: its dims and little-endian bytes, owned.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Item {
    /// Dims.
    pub dims: Vec<usize>,
    /// Bytes.
    pub bytes: Vec<u8>,
}

/// Every tensor's slot and dims, the heap-buffer pool and its accounting.
pub(crate) struct Tensors {
    /// Per tensor: where its bytes are.
    pub slots: Vec<Slot>,
    /// Per tensor: its dims as last produced (weights: their constant dims).
    pub dims: Vec<Vec<usize>>,
    /// Bytes held by heap tensors now, and at most during the current run.
    heap_now: usize,
    heap_peak: usize,
    /// Freed heap buffers, reused by later dynamic tensors.
    pool: Vec<Vec<u64>>,
    /// Bytes each heap tensor had when last produced: the size asked of the pool for an
    /// execution-determined output whose dims the plan cannot give.
    last_len: Vec<usize>,
}

impl Tensors {
    /// Empty slots for `n` tensors; `dims` holds the weights' constant dims.
    pub fn new(dims: Vec<Vec<usize>>) -> Tensors {
        let n = dims.len();
        Tensors {
            slots: (0..n).map(|_| Slot::Empty).collect(),
            dims,
            heap_now: 0,
            heap_peak: 0,
            pool: Vec::new(),
            last_len: vec![0; n],
        }
    }

    /// Starts a run's accounting: heap buffers still held from the previous run (graph
    /// outputs) count from the start.
    pub fn start_run(&mut self) {
        self.heap_now = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Heap(_, len) => *len,
                _ => 0,
            })
            .sum();
        self.heap_peak = self.heap_now;
    }

    /// Bytes the heap tensors' buffers and the pool hold (their allocations), for the memory
    /// limit: counted only when a buffer must grow.
    pub fn held_bytes(&self) -> usize {
        let slots: usize = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Heap(v, _) => v.capacity() * 8,
                Slot::Seq(items) => items.iter().map(|i| i.bytes.capacity()).sum(),
                _ => 0,
            })
            .sum();
        slots + self.pool.iter().map(|v| v.capacity() * 8).sum::<usize>()
    }

    /// Most bytes held at once by heap tensors in the last run.
    pub fn heap_peak(&self) -> usize {
        self.heap_peak
    }

    /// The bytes tensor `t` had when last produced on the heap.
    pub fn last_len(&self, t: u32) -> usize {
        self.last_len[t as usize]
    }

    /// Takes tensor `t`'s heap buffer out of its slot for the tensor to be produced again (or
    /// a pooled one for `want` bytes when it holds none).
    pub fn take_buffer(&mut self, t: u32, want: usize) -> Vec<u64> {
        match std::mem::replace(&mut self.slots[t as usize], Slot::Empty) {
            Slot::Heap(v, len) => {
                self.heap_now = self.heap_now.saturating_sub(len);
                v
            }
            _ => self.take_pooled(want),
        }
    }

    /// Puts buffer `v` holding `bytes` bytes in tensor `t`'s slot.
    pub fn put_heap(&mut self, t: u32, v: Vec<u64>, bytes: usize) {
        self.last_len[t as usize] = bytes;
        self.heap_now += bytes;
        self.heap_peak = self.heap_peak.max(self.heap_now);
        self.slots[t as usize] = Slot::Heap(v, bytes);
    }

    /// Releases tensor `t`'s heap buffer to the pool (a sequence's tensors are dropped;
    /// nothing for other slots).
    pub fn release(&mut self, t: u32) {
        if matches!(self.slots[t as usize], Slot::Seq(_) | Slot::Absent) {
            self.slots[t as usize] = Slot::Empty;
            return;
        }
        if let Slot::Heap(..) = self.slots[t as usize] {
            if let Slot::Heap(v, len) = std::mem::replace(&mut self.slots[t as usize], Slot::Empty)
            {
                self.heap_now = self.heap_now.saturating_sub(len);
                self.give_back(v);
            }
        }
    }

    /// Hands heap tensor `src`'s buffer and `dims` to `dst`; `dst`'s old buffer stays with
    /// `src` (holding nothing) for its next production, so the two trade buffers and warm runs
    /// allocate nothing. The caller guarantees nothing reads `src` before it is produced again.
    pub fn hand_over(&mut self, src: u32, dst: u32, dims: &[usize]) {
        let moved = std::mem::replace(&mut self.slots[src as usize], Slot::Empty);
        if let Slot::Heap(_, len) = moved {
            self.last_len[dst as usize] = len;
        }
        if let Slot::Heap(v, len) = std::mem::replace(&mut self.slots[dst as usize], moved) {
            self.heap_now = self.heap_now.saturating_sub(len);
            self.slots[src as usize] = Slot::Heap(v, 0);
        }
        set_dims(&mut self.dims[dst as usize], dims);
    }

    /// A freed heap buffer for `bytes` bytes (the smallest that holds them, else the largest,
    /// which the caller grows), so sub-plan and execution-determined tensors stop allocating
    /// (and faulting in fresh pages) once the largest shape has run.
    fn take_pooled(&mut self, bytes: usize) -> Vec<u64> {
        let words = bytes.div_ceil(8);
        let pick = self
            .pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= words)
            .min_by_key(|(_, v)| v.capacity())
            .or_else(|| {
                self.pool
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.capacity())
            })
            .map(|(i, _)| i);
        pick.map_or_else(Vec::new, |i| self.pool.swap_remove(i))
    }

    /// Returns a heap buffer to the pool (bounded: the pool never holds more buffers than the
    /// plan has tensors).
    fn give_back(&mut self, v: Vec<u64>) {
        if v.capacity() > 0 && self.pool.len() < self.slots.len() {
            self.pool.push(v);
        }
    }
}

/// Sets `slot` to `dims`, reusing its buffer.
pub(crate) fn set_dims(slot: &mut Vec<usize>, dims: &[usize]) {
    slot.clear();
    slot.extend_from_slice(dims);
}
