// bee: Python frames of CPython 3.10-3.13 processes, compiled with profile.c (appended
// after it, and after unwind.c, by bee_record/sampler.py); used when Python frames are
// walked (BEE_F_PYTHON), else its maps get one entry and its programs stay unloaded.
//
// User space detects CPython processes and writes one `py_procs` entry per process
// generation: where `_PyRuntime.interpreters.head` is and the version's struct offsets
// (bee_record/python/layout.py). At each sample of such a process this code finds the
// sampled thread's PyThreadState (cached per thread, checked against the thread id at every
// use), walks its frame chain leaf first and stores the raw frames: the code object's
// address and the instruction index (code units), with BEE_PY_ENTRY on the first frame of
// each _PyEval_EvalFrameDefault activation. No name is read here.
//
// The work runs in tail-called programs, one chain per program type, so that the verifier
// checks each piece once instead of every path through all of them (one program holding
// the whole walk verified 890k instructions, 0.6 s of CPU at every launch): the sampling
// program fills the per-CPU state (`bee_python_begin`) and tail-calls the first link;
// each link walks BEE_PY_FRAMES_PER_LINK frames and calls the next, the last calls the
// store, which stores the stack and then does what the sampling program would have done
// next (the unwinder's chain, or counting the key, or remembering an off-CPU start).
// The sched_switch program starts the same chain for the thread going off CPU.
//
// Python stacks are stored in py_stacks0/1 (double-buffered with the counts, same flip),
// or for off-CPU starts in offpystacks (never cleared: a block can span drains), keyed by
// a hash of the process and the frames. A slot holding a different stack (another pid,
// length or 64-bit hash) moves on to the next slot (BEE_PY_PROBES times); when none fits,
// the loss is counted, never silent. Each stack newly stored is also sent to user space
// through the `py_new` perf buffer (its pid and code addresses; once per new stack per
// drain), so that the code objects' names are read within milliseconds, while a
// short-lived process still exists, instead of at the next drain.

#define BEE_PY_FRAMES 128  // chain steps walked (3.12+ shim frames count, unrecorded)
#define BEE_PY_FRAMES_PER_LINK 32
#define BEE_PY_LINKS (BEE_PY_FRAMES / BEE_PY_FRAMES_PER_LINK)

#define BEE_PY_MASK 127
#define BEE_PY_STACKS 2048
#define BEE_PY_PROCS 4096
#define BEE_PY_THREADS 64  // thread states examined to find a thread (all interpreters)
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
    u64 hash;             // of the pid and the frames, all 64 bits (the slot uses 31)
};

struct bee_py_thread {
    u64 tstate;           // 0: this thread had no thread state at `checked`
    u64 checked;
};

// Per-CPU working memory and the state of the sample being walked, carried across the
// tail calls (nothing of it fits on the 512-byte BPF stack profile.c and the unwinder need).
struct bee_py_scratch {
    struct bee_py_stack stack;
    u8 chunk[BEE_PY_CHUNK + 8];
    u64 word;
    u64 thread_key;
    struct bee_py_thread thread;
    u32 slot;
    u32 n;                // frames recorded so far
    u64 frame;            // the next frame to read (0: the chain ended)
    u64 hash;
    u32 links;            // links run so far
    u32 buf;              // the counts buffer active when the sample was taken
    u32 dest;             // 0: count the key; 1: remember it as an off-CPU start
    u32 have_regs;
    u64 weight;
    u64 ts;               // off-CPU: when the thread went off CPU
    struct bee_key key;
    struct bee_regs regs; // the user registers, for the unwinder after the store
};

BPF_TABLE("lru_hash", u32, struct bee_py_proc, py_procs, BEE_PY_PROCS);
BPF_TABLE("lru_hash", u64, struct bee_py_thread, py_threads, BEE_PY_PROCS * 4);
BPF_HASH(py_stacks0, u32, struct bee_py_stack, BEE_PY_STACKS);
BPF_HASH(py_stacks1, u32, struct bee_py_stack, BEE_PY_STACKS);
// Python stacks of off-CPU starts, never cleared during the recording (like offstacks).
BPF_HASH(offpystacks, u32, struct bee_py_stack, BEE_OFFSTACK_SIZE);
BPF_PERCPU_ARRAY(py_scratch, struct bee_py_scratch, 1);
// The walker's tail-call chains, one per program type: [BEE_PY_LINK], [BEE_PY_STORE].
BPF_PROG_ARRAY(bee_pytail_perf, 2);
BPF_PROG_ARRAY(bee_pytail_tp, 2);
BPF_PROG_ARRAY(bee_pytail_kp, 2);
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
    if (bee_read_user(&s->word, sizeof(s->word), (void *)addr) != 0)
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
#pragma clang loop unroll(disable)
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

// Walk up to BEE_PY_FRAMES_PER_LINK more frames into the scratch stack, from where the
// state says. The loop body branches only to leave the loop: every per-frame decision
// (shim frame, entry flag, version family) is arithmetic.
static __always_inline void bee_py_walk(struct bee_py_proc *p, struct bee_py_scratch *s)
{
    struct bee_py_stack *st = &s->stack;
    u64 frame = s->frame;
    u32 n = s->n;
    u64 h = s->hash;
    // Few locals on purpose: the loop reads the per-process constants from `p` so that
    // nothing spills to the BPF stack, which profile.c and the unwinder need.
#pragma clang loop unroll(disable)
    for (int i = 0; i < BEE_PY_FRAMES_PER_LINK; i++) {
        if (!frame)
            break;
        if (bee_read_user(s->chunk, p->frame_read & (BEE_PY_CHUNK - 1),
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
    s->frame = frame;
    s->n = n;
    s->hash = h;
}

// 1 when the stacks are equal: the same process, length and 64-bit hash of the frames.
// (Comparing the frames themselves cost the verifier 600k instructions per probe: over
// the few thousand stacks of a drain, two different stacks with one 64-bit hash are
// about 2^-40 likely.)
static __always_inline int bee_py_same(struct bee_py_stack *a, struct bee_py_stack *b)
{
    return a->len == b->len && a->pid == b->pid && a->hash == b->hash;
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

static __always_inline struct bee_py_stack *bee_py_lookup(u32 which, u32 *k)
{
    if (which == 0)
        return py_stacks0.lookup(k);
    if (which == 1)
        return py_stacks1.lookup(k);
    return offpystacks.lookup(k);
}

static __always_inline int bee_py_insert(u32 which, u32 *k, struct bee_py_stack *v)
{
    if (which == 0)
        return py_stacks0.insert(k, v);
    if (which == 1)
        return py_stacks1.insert(k, v);
    return offpystacks.insert(k, v);
}

static __always_inline s32 bee_py_store(void *ctx, struct bee_py_scratch *s, u32 h, u32 which)
{
    struct bee_py_stack *st = &s->stack;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < BEE_PY_PROBES; i++) {
        s->slot = (h + i) & 0x7fffffff;
        struct bee_py_stack *have = bee_py_lookup(which, &s->slot);
        if (!have) {
            if (bee_py_insert(which, &s->slot, st) == 0) {
                bee_py_notify(ctx, st);
                return (h + i) & 0x7fffffff;
            }
            // Another CPU took the slot meanwhile, or the table is full.
            have = bee_py_lookup(which, &s->slot);
            if (!have)
                break;
        }
        if (bee_py_same(have, st))
            return (h + i) & 0x7fffffff;
    }
    bee_py_lost(PY_LOST_STACKS_FULL);
    return -2;
}

// Continue in the walker's chain of this program type; returns only if the call failed.
static __always_inline void bee_py_tail(void *ctx, int type, u32 index)
{
    if (type == BEE_TAIL_PERF)
        bee_pytail_perf.call(ctx, index);
    else if (type == BEE_TAIL_TP)
        bee_pytail_tp.call(ctx, index);
    else
        bee_pytail_kp.call(ctx, index);
}

// Start the walk for `key` when its task is a thread of a CPython process generation:
// returns 1 when the caller must tail-call the walker (bee_py_tail), 0 otherwise (the key
// then has no Python stack). `regs` are the user registers for the unwinder, or 0.
static __always_inline int bee_python_begin(struct bee_key *key, u64 weight, u32 buf,
                                            struct bee_regs *regs, u32 dest, u64 ts)
{
    u32 pid = key->pid;
    struct bee_py_proc *p = py_procs.lookup(&pid);
    if (!p || p->gen != key->gen)
        return 0;
    u32 zero = 0;
    struct bee_py_scratch *s = py_scratch.lookup(&zero);
    if (!s)
        return 0;
    s->key = *key;
    s->weight = weight;
    s->buf = buf;
    s->dest = dest;
    s->ts = ts;
    s->have_regs = regs ? 1 : 0;
    if (regs)
        s->regs = *regs;
    s->links = 0;
    s->n = 0;
    s->frame = 0;
    return 1;
}

// Do what the sampling program does after the Python stack: the unwinder's chain, or
// count the key (on CPU) or remember it as the start of an off-CPU block.
static __always_inline void bee_py_continue(void *ctx, int type, struct bee_py_scratch *s)
{
    struct bee_key key = s->key;
    struct bee_config *c = bee_config();
    if (c && bee_dwarf_user(c->flags) && bee_unwind_begin(&key, s->weight, s->buf, s->have_regs ? &s->regs : 0, s->dest,
                         s->ts)) {
        bee_tail(ctx, type);
        key.user_stack = -2;  // the unwinder is missing: count the sample all the same
        bee_lost(LOST_USER_STACK);
    }
    if (s->dest == 1) {
        struct bee_off off = {};
        off.ts = s->ts;
        off.key = key;
        u32 tid = key.tid;
        offstart.update(&tid, &off);
        return;
    }
    bee_add_buf(&key, s->weight, s->buf);
}

// One link of the walk: find the thread state (first link), walk frames, then the next
// link or the store.
static __always_inline int bee_py_link(void *ctx, int type)
{
    u32 zero = 0;
    struct bee_py_scratch *s = py_scratch.lookup(&zero);
    if (!s)
        return 0;
    u32 pid = s->key.pid;
    struct bee_py_proc *p = py_procs.lookup(&pid);
    if (p && s->links == 0) {
        u64 tstate = bee_py_tstate(s, p, pid, s->key.tid);
        u64 frame = tstate ? bee_py_u64(s, tstate + p->tstate_frame) : 0;
        if (frame && p->cframe_current >= 0)
            frame = bee_py_u64(s, frame + p->cframe_current);
        s->frame = frame;
        s->hash = 0xcbf29ce484222325ULL;
    }
    if (p && s->frame)
        bee_py_walk(p, s);
    s->links++;
    if (p && s->frame && s->links < BEE_PY_LINKS)
        bee_py_tail(ctx, type, BEE_PY_LINK);
    bee_py_tail(ctx, type, BEE_PY_STORE);
    s->key.py_stack = -2;  // the store is missing
    bee_py_continue(ctx, type, s);
    return 0;
}

// The end of the walk: store the stack (py_stacks of the sample's buffer, or offpystacks
// for an off-CPU start) and go on.
static __always_inline int bee_py_finish(void *ctx, int type)
{
    u32 zero = 0;
    struct bee_py_scratch *s = py_scratch.lookup(&zero);
    if (!s)
        return 0;
    u32 n = s->n;
    if (n == 0) {
        s->key.py_stack = -1;
    } else {
        s->stack.len = n | (s->frame ? BEE_PY_TRUNCATED : 0);
        s->stack.pid = s->key.pid;
        u64 h = (s->hash ^ s->key.pid) * 0x100000001b3ULL;
        s->stack.hash = h;
        u32 h32 = (u32)(h ^ (h >> 32)) & 0x7fffffff;
        s->key.py_stack = bee_py_store(ctx, s, h32, s->dest == 1 ? 2 : s->buf);
    }
    bee_py_continue(ctx, type, s);
    return 0;
}

int bee_py_link_perf(void *ctx) { return bee_py_link(ctx, BEE_TAIL_PERF); }
int bee_py_store_perf(void *ctx) { return bee_py_finish(ctx, BEE_TAIL_PERF); }
int bee_py_link_tp(void *ctx) { return bee_py_link(ctx, BEE_TAIL_TP); }
int bee_py_store_tp(void *ctx) { return bee_py_finish(ctx, BEE_TAIL_TP); }
int bee_py_link_kp(void *ctx) { return bee_py_link(ctx, BEE_TAIL_KP); }
int bee_py_store_kp(void *ctx) { return bee_py_finish(ctx, BEE_TAIL_KP); }
