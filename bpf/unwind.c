// bee: user-stack unwinding from .eh_frame tables, for code built without frame pointers.
// Concatenated after profile.c by bee_record/sampler.py; used when user stacks are
// unwound by bee (BEE_F_DWARF), else its maps get one entry and its programs stay unloaded.
//
// User space (bee_record/unwind/) decodes each mapped binary's call-frame information
// into rows (`urows`, shared by every process mapping the binary) and writes, per
// process, its mappings that have rows (`uprocs` gives the process's slot in
// `umap_entries`: sorted, with the bias that turns an address into the binary's virtual
// address and the binary's [first, first+count) rows).
// A sample starts from the user registers (the event's when it interrupted user mode,
// else the task's saved user registers), then each step finds the pc's mapping and row
// by bounded binary search and applies the row: CFA from RSP or RBP plus an offset, the
// PLT rule, or the signal-frame rule (registers read from the ucontext that
// __restore_rt's stack pointer points at); the return address is at CFA-8 and RBP, when
// saved, at CFA+rbp_off. A pc no row covers falls back to the frame pointer. The frames
// are split over tail calls (BEE_FRAMES_PER_PROG frames per program) to stay within the
// verifier's limits. The finished stack goes to bee's own stack storage (ustacks0/1,
// double-buffered like the counts): its key is a hash of the addresses; a key already
// holding a different stack moves on to the next of BEE_STACK_PROBES slots, so a
// collision is never silently merged. A stack that could not be finished (out of
// frames, no rule, unreadable memory) ends with BEE_TRUNCATED.

#define BEE_UNWIND_ROWS (1 << 20)
#define BEE_USTACK_SIZE 4096
#define BEE_UMAPS_PROCS 1024
#define BEE_UMAPS_MAX 128          // mappings with rows per process (power of two)
#define BEE_UMAPS_STEPS 8          // log2(BEE_UMAPS_MAX) + 1
#define BEE_ROWS_STEPS 25          // enough for 2^24 rows per binary
#define BEE_STACK_SLOTS 128        // power of two
#define BEE_MAX_FRAMES 127         // addresses; one more slot for BEE_TRUNCATED
#define BEE_FRAMES_PER_PROG 8
#define BEE_MAX_TAILS 16           // (the kernel allows 33 tail calls per chain)
#define BEE_STACK_PROBES 4
#define BEE_TRUNCATED 0xffffffffffffffffULL

// Row kinds, mirrored in bee_record/unwind/cfi.py.
#define KIND_NONE 0
#define KIND_CFA_RSP 1
#define KIND_CFA_RBP 2
#define KIND_PLT 3
#define KIND_SIGNAL 4
#define KIND_END 5

// Offsets in the signal frame at __restore_rt's RSP: struct ucontext (uc_flags, uc_link,
// uc_stack: 40 bytes) then struct sigcontext (uapi asm/sigcontext.h: r8..r15, rdi, rsi,
// rbp, rbx, rdx, rax, rcx, rsp, rip).
#define BEE_UC_RBP (40 + 80)
#define BEE_UC_RSP (40 + 120)
#define BEE_UC_RIP (40 + 128)

struct bee_row {
    u32 pc;      // ELF virtual address where the row starts
    u16 cfa;     // CFA offset / 8
    u8 kind;
    u8 rbp;      // RBP's slot: CFA + (s8)rbp * 8, 0 when unchanged; KIND_PLT: the threshold
};

struct bee_umap {
    u64 start;
    u64 end;
    u64 bias;    // address + bias = the binary's virtual address
    u32 first;   // the binary's rows in urows
    u32 count;
};

// Where a process's mappings are in `umap_entries`: [slot * BEE_UMAPS_MAX, + count).
struct bee_uproc {
    u32 slot;
    u32 count;
};

// A user stack as stored: addresses leaf first.
struct bee_ustack {
    u32 len;
    u32 flags;
    u64 addrs[BEE_STACK_SLOTS];
};

// Per-CPU state of the sample being unwound, carried across the tail calls.
struct bee_ustate {
    u64 pc, sp, bp;
    u64 hash;
    u64 weight;
    u64 ts;        // off-CPU: when the thread went off CPU
    u32 exact;     // pc is the interrupted instruction, not a return address
    u32 tails;
    u32 buf;       // the counts/stacks buffer active when the sample was taken
    u32 dest;      // 0: count the key; 1: remember it as an off-CPU start (offstart)
    struct bee_key key;
    struct bee_ustack stack;
};

BPF_F_TABLE("array", u32, struct bee_row, urows, BEE_UNWIND_ROWS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, struct bee_umap, umap_entries, BEE_UMAPS_PROCS * BEE_UMAPS_MAX,
            BPF_F_MMAPABLE);
BPF_HASH(uprocs, u32, struct bee_uproc, BEE_UMAPS_PROCS);
// Collisions are re-slotted, not dropped, so the table can run fuller than the kernel's
// stack map: a quarter of its size by default (preallocating it costs start-up time).
BPF_HASH(ustacks0, u64, struct bee_ustack, BEE_USTACK_SIZE);
BPF_HASH(ustacks1, u64, struct bee_ustack, BEE_USTACK_SIZE);
BPF_HASH(offustacks, u64, struct bee_ustack, BEE_OFFSTACK_SIZE);
BPF_PERCPU_ARRAY(ustate, struct bee_ustate, 1);

// A process exec'ed or exited: its mappings are gone.
static __always_inline void bee_unwind_forget(u32 pid)
{
    uprocs.delete(&pid);
}

static __always_inline u64 bee_mix(u64 h, u64 pc)
{
    h = (h ^ pc) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 31);
}

// Start unwinding for `key` from the user registers `regs` (0: none, e.g. a kernel
// thread). Returns 1 when the caller must tail-call the unwinder, 0 when the key is
// complete (no user stack).
static __always_inline int bee_unwind_begin(struct bee_key *key, u64 weight, u32 buf,
                                            struct bee_regs *regs, u32 dest, u64 ts)
{
    if (!regs || (regs->cs & 3) != 3 || !regs->ip) {
        key->user_stack = -1;
        return 0;
    }
    u32 zero = 0;
    struct bee_ustate *st = ustate.lookup(&zero);
    if (!st) {
        key->user_stack = -2;
        bee_lost(LOST_USER_STACK);
        return 0;
    }
    st->pc = regs->ip;
    st->sp = regs->sp;
    st->bp = regs->bp;
    st->hash = 0xcbf29ce484222325ULL;
    st->exact = 1;
    st->tails = 0;
    st->buf = buf;
    st->dest = dest;
    st->ts = ts;
    st->weight = weight;
    st->key = *key;
    st->stack.len = 0;
    st->stack.flags = 0;
    return 1;
}

// The user registers of the current task: the event's own when it interrupted user mode
// (perf events), else those saved on kernel entry.
static __always_inline int bee_task_regs(struct bee_regs *out)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
    struct bee_regs *saved = (struct bee_regs *)bpf_task_pt_regs(task);
    if (!saved || bpf_probe_read_kernel(out, sizeof(*out), saved) != 0)
        return 0;
    return 1;
}

static __always_inline int bee_read(u64 *out, u64 addr)
{
    return bee_read_user(out, sizeof(*out), (void *)addr) == 0;
}

// 1 when a <= b, without a branch (both below 2^63).
static __always_inline u32 bee_le(u64 a, u64 b)
{
    return 1 ^ (u32)((b - a) >> 63);
}

// Find the row for `pc` (a return address minus one unless exact); 0 when none.
// Both binary searches run a fixed number of steps without branches (`base` moves by
// `half` when the probed entry is <= the target): the verifier then follows one path
// through them instead of one per outcome, which keeps many frames per program within
// its limits. Indices go through map lookups, never pointer arithmetic.
static __always_inline int bee_find_row(struct bee_uproc *up, u64 pc, struct bee_row *out)
{
    if (!up)
        return 0;
    u32 first = up->slot * BEE_UMAPS_MAX;
    u32 n = up->count;
    if (n == 0 || n > BEE_UMAPS_MAX)
        return 0;
    // last mapping with start <= pc
    u32 base = first;
#pragma clang loop unroll(disable)
    for (int i = 0; i < BEE_UMAPS_STEPS; i++) {
        u32 half = n >> 1;
        u32 at = base + half;
        struct bee_umap *e = umap_entries.lookup(&at);
        if (!e)
            return 0;
        base += half * bee_le(e->start, pc);
        n -= half;
    }
    struct bee_umap *m = umap_entries.lookup(&base);
    if (!m || pc < m->start || pc >= m->end || m->count == 0)
        return 0;
    u64 vaddr = pc + m->bias;
    if (vaddr >> 32)
        return 0;
    // last row with pc <= vaddr
    u32 row = m->first;
    n = m->count;
#pragma clang loop unroll(disable)
    for (int i = 0; i < BEE_ROWS_STEPS; i++) {
        u32 half = n >> 1;
        u32 at = row + half;
        struct bee_row *r = urows.lookup(&at);
        if (!r)
            return 0;
        row += half * bee_le(r->pc, vaddr);
        n -= half;
    }
    struct bee_row *r = urows.lookup(&row);
    if (!r || r->pc > vaddr)
        return 0;
    *out = *r;
    return 1;
}

#define BEE_STEP_MORE 0
#define BEE_STEP_DONE 1
#define BEE_STEP_TRUNCATED 2

// Record the current pc and move to the caller's frame.
static __always_inline int bee_step(struct bee_ustate *st, struct bee_uproc *um)
{
    u32 n = st->stack.len;
    if (n >= BEE_MAX_FRAMES)
        return BEE_STEP_TRUNCATED;
    u64 pc = st->pc;
    // Stored addresses are return addresses (the report looks them up at address - 1),
    // so an exact pc above the leaf (the instruction a signal interrupted) is stored + 1.
    u64 stored = st->exact && n ? pc + 1 : pc;
    u64 hash = st->hash;
    st->stack.addrs[n & (BEE_STACK_SLOTS - 1)] = stored;
    st->stack.len = n + 1;
    st->hash = bee_mix(hash, stored);

    u64 sp = st->sp, bp = st->bp, cfa, ra;
    struct bee_row row = {};
    if (!bee_find_row(um, st->exact ? pc : pc - 1, &row))
        row.kind = KIND_NONE;
    switch (row.kind) {
    case KIND_END:
        return BEE_STEP_DONE;
    case KIND_SIGNAL: {
        // pc is the trampoline's first instruction (where the handler returns), found
        // at pc - 1 by its CFI: stored + 1 so the report names the trampoline too.
        st->stack.addrs[n & (BEE_STACK_SLOTS - 1)] = pc + 1;
        st->hash = bee_mix(hash, pc + 1);
        u64 nbp, nsp, npc;
        if (!bee_read(&nbp, sp + BEE_UC_RBP) || !bee_read(&nsp, sp + BEE_UC_RSP) ||
            !bee_read(&npc, sp + BEE_UC_RIP))
            return BEE_STEP_TRUNCATED;
        st->bp = nbp;
        st->sp = nsp;
        st->pc = npc;
        st->exact = 1;  // the interrupted instruction itself, not a return address
        return npc ? BEE_STEP_MORE : BEE_STEP_TRUNCATED;
    }
    case KIND_CFA_RSP:
        cfa = sp + ((u64)row.cfa << 3);
        break;
    case KIND_CFA_RBP:
        cfa = bp + ((u64)row.cfa << 3);
        break;
    case KIND_PLT:
        cfa = sp + ((u64)row.cfa << 3) + ((pc & 15) >= (u8)row.rbp ? 8 : 0);
        row.rbp = 0;
        break;
    default:
        if (st->exact && n == 0) {
            // A leaf without a table (e.g. tables not loaded yet) on a breakpoint: a
            // uprobe, most often at a function's entry, where the return address is
            // still at RSP and RBP is the caller's (as the kernel assumes there).
            u8 insn = 0;
            if (bee_read_user(&insn, 1, (void *)pc) == 0 && insn == 0xcc) {
                cfa = sp + 8;
                break;
            }
        }
        // No table: the frame pointer, if this code keeps one.
        if (bp == 0)
            return BEE_STEP_DONE;  // the outermost frame of a frame-pointer chain
        if (bp < sp)
            return BEE_STEP_TRUNCATED;
        cfa = bp + 16;
        row.rbp = (u8)-2;
        break;
    }
    if (!bee_read(&ra, cfa - 8))
        return BEE_STEP_TRUNCATED;
    if (row.rbp) {
        if (!bee_read(&bp, cfa + ((s64)(s8)row.rbp << 3)))
            return BEE_STEP_TRUNCATED;
    }
    if (ra == 0)
        return BEE_STEP_DONE;
    if (cfa <= sp)
        return BEE_STEP_TRUNCATED;  // no progress: a wrong rule or corrupt stack
    st->pc = ra;
    st->sp = cfa;
    st->bp = bp;
    st->exact = 0;
    return BEE_STEP_MORE;
}

static __always_inline int bee_same_stack(struct bee_ustack *a, struct bee_ustack *b)
{
    u32 n = a->len;
    if (n != b->len || n > BEE_STACK_SLOTS)
        return 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < BEE_STACK_SLOTS; i++) {
        if (i >= n)
            break;
        if (a->addrs[i] != b->addrs[i])
            return 0;
    }
    return 1;
}

#define BEE_STORE_BUF0 0
#define BEE_STORE_BUF1 1
#define BEE_STORE_OFF 2

static __always_inline struct bee_ustack *bee_ustack_lookup(int which, u64 *k)
{
    if (which == BEE_STORE_BUF0)
        return ustacks0.lookup(k);
    if (which == BEE_STORE_BUF1)
        return ustacks1.lookup(k);
    return offustacks.lookup(k);
}

static __always_inline int bee_ustack_insert(int which, u64 *k, struct bee_ustack *v)
{
    if (which == BEE_STORE_BUF0)
        return ustacks0.insert(k, v);
    if (which == BEE_STORE_BUF1)
        return ustacks1.insert(k, v);
    return offustacks.insert(k, v);
}

// Store the stack under its hash (or the next free probe) in the storage `which`;
// returns the key, or -2 when the storage is full.
static __always_inline s64 bee_store(struct bee_ustate *st, int which)
{
    u64 h = st->hash;
#pragma clang loop unroll(disable)
    for (int probe = 0; probe < BEE_STACK_PROBES; probe++) {
        u64 k = (h + probe * 0x9E3779B97F4A7C15ULL) >> 1;
        struct bee_ustack *have = bee_ustack_lookup(which, &k);
        if (!have) {
            if (bee_ustack_insert(which, &k, &st->stack) == 0)
                return (s64)k;
            have = bee_ustack_lookup(which, &k);
            if (!have)
                return -2;
        }
        if (bee_same_stack(have, &st->stack))
            return (s64)k;
    }
    return -2;
}

// The stack is complete or cannot go further: store it and count the key.
static __always_inline void bee_unwind_finish(struct bee_ustate *st, int truncated)
{
    if (truncated) {
        u32 n = st->stack.len;
        if (n < BEE_STACK_SLOTS) {
            st->stack.addrs[n & (BEE_STACK_SLOTS - 1)] = BEE_TRUNCATED;
            st->stack.len = n + 1;
            st->hash = bee_mix(st->hash, BEE_TRUNCATED);
        }
    }
    struct bee_key key = st->key;
    s64 k;
    if (st->dest == 1) {
        k = bee_store(st, BEE_STORE_OFF);
        if (k < 0)
            bee_lost(LOST_USER_STACK);
        struct bee_off off = {};
        off.ts = st->ts;
        off.key = key;
        off.key.user_stack = k;
        u32 tid = key.tid;
        offstart.update(&tid, &off);
        return;
    }
    if (st->buf)
        k = bee_store(st, BEE_STORE_BUF1);
    else
        k = bee_store(st, BEE_STORE_BUF0);
    if (k < 0)
        bee_lost(LOST_USER_STACK);
    key.user_stack = k;
    bee_add_buf(&key, st->weight, st->buf);
}

// One link of the unwinding chain: BEE_FRAMES_PER_PROG frames, then the next link, or
// the end. One program per program type (a tail call stays within its type).
static __always_inline int bee_unwind_link(void *ctx, int type)
{
    u32 zero = 0;
    struct bee_ustate *st = ustate.lookup(&zero);
    if (!st)
        return 0;
    u32 pid = st->key.pid;
    struct bee_uproc *um = uprocs.lookup(&pid);
    int res = BEE_STEP_MORE;
#pragma clang loop unroll(disable)
    for (int i = 0; i < BEE_FRAMES_PER_PROG; i++) {
        res = bee_step(st, um);
        if (res != BEE_STEP_MORE)
            break;
    }
    if (res == BEE_STEP_MORE && st->tails < BEE_MAX_TAILS) {
        st->tails++;
        bee_tail(ctx, type);
    }
    bee_unwind_finish(st, res != BEE_STEP_DONE);
    return 0;
}

int bee_unwind_perf(void *ctx) { return bee_unwind_link(ctx, BEE_TAIL_PERF); }
int bee_unwind_tp(void *ctx) { return bee_unwind_link(ctx, BEE_TAIL_TP); }
int bee_unwind_kp(void *ctx) { return bee_unwind_link(ctx, BEE_TAIL_KP); }
