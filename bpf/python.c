// bee: Python frames of CPython 3.10-3.13 processes, compiled with profile.c (placed
// before it by bee_record/sampler.py when BEE_PYTHON is defined).
//
// User space detects CPython processes and writes one `py_procs` entry per process
// generation: where `_PyRuntime.interpreters.head` is and the version's struct offsets
// (bee_record/python/layout.py). At each sample of such a process this code finds the
// sampled thread's PyThreadState (cached per thread, checked against the thread id at every
// use), walks its frame chain leaf first and stores the raw frames: the code object's
// address and the instruction index (code units), with BEE_PY_ENTRY on the first frame of
// each _PyEval_EvalFrameDefault activation. No name is read here.
//
// Python stacks are stored in py_stacks0/1 (double-buffered with the counts, same flip),
// keyed by a hash of the process and the frames. A slot holding a different stack is
// compared and the next slot tried (BEE_PY_PROBES times); when none fits, the loss is
// counted, never silent. Each stack newly stored is also sent to user space through the
// `py_new` perf buffer (the pid and the code addresses, bounded by the slots: once per new
// stack per drain), so that the code objects' names are read within milliseconds, while
// a short-lived process still exists, instead of at the next drain.

#ifndef BEE_PY_FRAMES
#define BEE_PY_FRAMES 128  // chain steps walked (3.12+ shim frames count, unrecorded)
#endif
#define BEE_PY_MASK 127
#ifndef BEE_PY_STACKS
#define BEE_PY_STACKS 2048
#endif
#ifndef BEE_PY_PROCS
#define BEE_PY_PROCS 4096
#endif
#ifndef BEE_PY_THREADS
#define BEE_PY_THREADS 64  // thread states examined to find a thread (all interpreters)
#endif
#define BEE_PY_PROBES 4
#define BEE_PY_ENTRY 0x80000000U
#define BEE_PY_TRUNCATED 0x80000000U
#define BEE_PY_CHUNK 128  // bytes of a frame read at once (offsets masked below this)
#define BEE_PY_RETRY_NS 100000000ULL  // re-search a thread without a thread state after

#define BEE_PY_MODEL_FRAME_OBJECTS 310
#define BEE_PY_MODEL_IS_ENTRY 311
#define BEE_PY_MODEL_CSTACK_SHIM 312
#define BEE_PY_OWNED_BY_CSTACK 3

// Indices of bee's Python lost counters (mirrored in bee_record/sampler.py).
#define PY_LOST_STACKS_FULL 0
#define PY_LOST_READ 1
#define PY_LOST_SLOTS 2

// Per process generation, written by user space (bee_record/python/detect.py).
struct bee_py_proc {
    u32 gen;
    u32 model;
    u64 interp_head;      // address of _PyRuntime.interpreters.head
    u32 interp_next;
    u32 threads_head;
    u32 tstate_next;
    u32 tstate_tid;       // native_thread_id, or thread_id (a pthread_t) when pthread_tid >= 0
    s32 pthread_tid;      // 3.10: offset of the kernel tid in glibc's struct pthread
    u32 tstate_frame;
    s32 cframe_current;   // 3.11/3.12: _PyCFrame.current_frame; -1 none
    u32 frame_previous;
    u32 frame_code;
    u32 frame_instr;
    s32 frame_owner;      // -1 none
    s32 frame_is_entry;   // -1 none
    s32 code_adaptive;    // -1: frame_instr is 3.10's int f_lasti
    u32 frame_read;       // bytes of a frame to read (max field offset + 8)
};

struct bee_py_stack {
    u32 len;              // frames; BEE_PY_TRUNCATED when the chain went on
    u32 pid;              // the process (a header of the py_new notification)
    u64 code[BEE_PY_MASK + 1];
    u32 info[BEE_PY_MASK + 1];  // instruction index in code units | BEE_PY_ENTRY
};

struct bee_py_thread {
    u64 tstate;           // 0: this thread had no thread state at `checked`
    u64 checked;
};

// Per-CPU working memory: everything here would otherwise live on the 512-byte BPF stack,
// which profile.c and the unwinder also need.
struct bee_py_scratch {
    struct bee_py_stack stack;
    u8 chunk[BEE_PY_CHUNK + 8];
    u64 word;
    u64 thread_key;
    struct bee_py_thread thread;
    u32 slot;
};

BPF_TABLE("lru_hash", u32, struct bee_py_proc, py_procs, BEE_PY_PROCS);
BPF_TABLE("lru_hash", u64, struct bee_py_thread, py_threads, BEE_PY_PROCS * 4);
BPF_HASH(py_stacks0, u32, struct bee_py_stack, BEE_PY_STACKS);
BPF_HASH(py_stacks1, u32, struct bee_py_stack, BEE_PY_STACKS);
BPF_PERCPU_ARRAY(py_scratch, struct bee_py_scratch, 1);
BPF_PERCPU_ARRAY(py_lost, u64, PY_LOST_SLOTS);
BPF_PERF_OUTPUT(py_new);

static __always_inline void bee_py_lost(int slot)
{
    u64 *v = py_lost.lookup(&slot);
    if (v)
        (*v)++;
}

static __always_inline u64 bee_py_u64(struct bee_py_scratch *s, u64 addr)
{
    if (bpf_probe_read_user(&s->word, sizeof(s->word), (void *)addr) != 0)
        return 0;
    return s->word;
}

// Is `tstate` the thread state of kernel thread `tid`?
static __always_inline int bee_py_is_thread(struct bee_py_scratch *s, struct bee_py_proc *p,
                                            u64 tstate, u32 tid)
{
    u64 id = bee_py_u64(s, tstate + p->tstate_tid);
    if (p->pthread_tid >= 0) {
        if (!id)
            return 0;
        return (u32)bee_py_u64(s, id + p->pthread_tid) == tid;
    }
    return (u32)id == tid && (id >> 32) == 0;
}

// The thread state of `tid`: cached, else searched in every interpreter's thread list.
static __always_inline u64 bee_py_tstate(struct bee_py_scratch *s, struct bee_py_proc *p,
                                         u32 pid, u32 tid)
{
    s->thread_key = ((u64)pid << 32) | tid;
    u64 now = bpf_ktime_get_ns();
    struct bee_py_thread *c = py_threads.lookup(&s->thread_key);
    if (c) {
        u64 cached = c->tstate;
        if (cached && bee_py_is_thread(s, p, cached, tid))
            return cached;
        if (!cached && now - c->checked < BEE_PY_RETRY_NS)
            return 0;
    }
    u64 interp = bee_py_u64(s, p->interp_head);
    u64 t = interp ? bee_py_u64(s, interp + p->threads_head) : 0;
    u64 found = 0;
    for (int i = 0; i < BEE_PY_THREADS; i++) {
        if (!t) {
            if (!interp)
                break;
            interp = bee_py_u64(s, interp + p->interp_next);
            t = interp ? bee_py_u64(s, interp + p->threads_head) : 0;
            continue;
        }
        if (bee_py_is_thread(s, p, t, tid)) {
            found = t;
            break;
        }
        t = bee_py_u64(s, t + p->tstate_next);
    }
    s->thread.tstate = found;
    s->thread.checked = now;
    py_threads.update(&s->thread_key, &s->thread);
    return found;
}

// An index into the frame arrays, opaque to the compiler so the mask stays in the code
// the verifier sees (clang otherwise folds it into the loop's induction variable).
static __always_inline u32 bee_py_ix(u32 j)
{
    asm volatile("" : "+r"(j));
    return j & BEE_PY_MASK;
}

static __always_inline u64 bee_py_field64(u8 *chunk, u32 off)
{
    u64 v;
    __builtin_memcpy(&v, chunk + (off & (BEE_PY_CHUNK - 1)), sizeof(v));
    return v;
}

// 1 when a == b, else 0, without a branch (BPF has no setcc; branches here would make
// the verifier explore 2^n paths through the frame loop).
static __always_inline u64 bee_py_eq(u64 a, u64 b)
{
    return ((a ^ b) - 1) >> 63 & ~((a ^ b) >> 63);
}

// Walk the frames of `tstate` into the scratch stack; returns the hash of the frames.
// The loop body branches only to leave the loop: every per-frame decision (shim frame,
// entry flag, version family) is arithmetic.
static __always_inline u32 bee_py_walk(struct bee_py_proc *p, u64 tstate,
                                                 struct bee_py_scratch *s)
{
    struct bee_py_stack *st = &s->stack;
    u64 frame = bee_py_u64(s, tstate + p->tstate_frame);
    if (frame && p->cframe_current >= 0)
        frame = bee_py_u64(s, frame + p->cframe_current);
    u32 n = 0;
    u64 h = 0xcbf29ce484222325ULL;
    // Few locals on purpose: the loop reads the per-process constants from `p` so that
    // nothing spills to the BPF stack, which profile.c and the unwinder need.
    for (int i = 0; i < BEE_PY_FRAMES; i++) {
        if (!frame)
            break;
        if (bpf_probe_read_user(s->chunk, p->frame_read & (BEE_PY_CHUNK - 1),
                                (void *)frame) != 0) {
            bee_py_lost(PY_LOST_READ);
            frame = 0;
            break;
        }
        u64 code = bee_py_field64(s->chunk, p->frame_code);
        u64 raw = bee_py_field64(s->chunk, p->frame_instr);
        u64 is310 = bee_py_eq(p->model, BEE_PY_MODEL_FRAME_OBJECTS);
        // 3.10: f_lasti, an int (negative before the first instruction);
        // 3.11+: an instruction pointer into the code object
        u64 lasti = raw & 0xffffffffULL;
        lasti &= ~(0ULL - (lasti >> 31));
        u64 delta = raw - (code + (u32)p->code_adaptive);
        u64 index = (delta >> 1) & ~(0ULL - (delta >> 63)) & 0x7fffffffULL;
        u64 info = (lasti & (0ULL - is310)) | (index & ~(0ULL - is310));
        u64 entry = is310 | (bee_py_eq(p->model, BEE_PY_MODEL_IS_ENTRY) &
                             (1 - bee_py_eq(s->chunk[(u32)p->frame_is_entry & (BEE_PY_CHUNK - 1)], 0)));
        info |= entry << 31;
        u64 shim = bee_py_eq(p->model, BEE_PY_MODEL_CSTACK_SHIM) &
                   bee_py_eq(s->chunk[(u32)p->frame_owner & (BEE_PY_CHUNK - 1)],
                             BEE_PY_OWNED_BY_CSTACK);
        // A shim precedes an eval activation: the frame recorded before it was its first.
        // Its own slot is written but not kept (n does not advance).
        st->info[bee_py_ix(n - 1)] |= (u32)shim << 31;
        st->code[bee_py_ix(n)] = code;
        st->info[bee_py_ix(n)] = (u32)info;
        h = (h ^ (code & (shim - 1))) * 0x100000001b3ULL;
        h = (h ^ (info & (shim - 1))) * 0x100000001b3ULL;
        n += 1 - shim;
        frame = bee_py_field64(s->chunk, p->frame_previous);
    }
    st->len = n | (frame ? BEE_PY_TRUNCATED : 0);
    return (u32)(h ^ (h >> 32)) & 0x7fffffff;
}

static __always_inline int bee_py_same(struct bee_py_stack *a, struct bee_py_stack *b)
{
    if (a->len != b->len || a->pid != b->pid)
        return 0;
    u32 n = a->len & ~BEE_PY_TRUNCATED;
    for (u32 j = 0; j < BEE_PY_FRAMES; j++) {
        if (j >= n)
            break;
        u32 k = bee_py_ix(j);
        if (a->code[k] != b->code[k] || a->info[k] != b->info[k])
            return 0;
    }
    return 1;
}

// Store the scratch stack in py_stacks<which>; returns its slot, or -2 (counted as lost).
// (bcc rewrites map calls by name, so both buffers are spelled out.)
// Tell user space which code objects a newly stored stack holds: the stack's head (len,
// pid) and its code addresses, nothing more (at most 127: a 128th is named at the drain).
static __always_inline void bee_py_notify(void *ctx, struct bee_py_stack *st)
{
    u32 n = st->len & 0xff;
    n = bee_py_ix(n - (n >> 7));
    py_new.perf_submit(ctx, st, 8 + (u64)n * 8);
}

static __always_inline s32 bee_py_store(void *ctx, struct bee_py_scratch *s, u32 h, u32 which)
{
    struct bee_py_stack *st = &s->stack;
    for (u32 i = 0; i < BEE_PY_PROBES; i++) {
        s->slot = (h + i) & 0x7fffffff;
        struct bee_py_stack *have = which ? py_stacks1.lookup(&s->slot)
                                          : py_stacks0.lookup(&s->slot);
        if (!have) {
            int err = which ? py_stacks1.insert(&s->slot, st) : py_stacks0.insert(&s->slot, st);
            if (err == 0) {
                bee_py_notify(ctx, st);
                return (h + i) & 0x7fffffff;
            }
            // Another CPU took the slot meanwhile, or the table is full.
            have = which ? py_stacks1.lookup(&s->slot) : py_stacks0.lookup(&s->slot);
            if (!have)
                break;
        }
        if (bee_py_same(have, st))
            return (h + i) & 0x7fffffff;
    }
    bee_py_lost(PY_LOST_STACKS_FULL);
    return -2;
}

// The Python stack of the current thread of (pid, gen) in buffer `which`: a slot in
// py_stacks<which>, -1 when it is not a CPython thread with frames, -2 when lost.
static __always_inline s32 bee_python_stack(void *ctx, u32 pid, u32 tid, u32 gen, u32 which)
{
    struct bee_py_proc *p = py_procs.lookup(&pid);
    if (!p || p->gen != gen)
        return -1;
    u32 zero = 0;
    struct bee_py_scratch *s = py_scratch.lookup(&zero);
    if (!s)
        return -1;
    u64 tstate = bee_py_tstate(s, p, pid, tid);
    if (!tstate)
        return -1;
    s->stack.len = 0;
    s->stack.pid = pid;
    u32 h = bee_py_walk(p, tstate, s) ^ (pid * 0x9E3779B1U);
    if ((s->stack.len & ~BEE_PY_TRUNCATED) == 0)
        return -1;
    return bee_py_store(ctx, s, h & 0x7fffffff, which);
}
