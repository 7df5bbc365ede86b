"""The machine and its processes: the device, the process group under a launcher, the precision (measured on a
CPU), the evaluation batch, and Ctrl-C or SIGTERM ending a run cleanly."""
import contextlib
import os
import signal
import sys
import time


def rank_zero():
    """Rank 0 under a launcher, or the only process; readable before the processes have joined."""
    return os.environ.get("RANK", "0") == "0"


def device_type():
    """A CUDA GPU, else Apple's GPU (MPS), else the CPU."""
    import torch
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def processes():
    """How many processes train together (WORLD_SIZE under a launcher), readable before they have joined."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank_zero():
    """The first process on this machine (LOCAL_RANK 0), or the only process."""
    return os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")) == "0"


@contextlib.contextmanager
def this_machine_first():
    """Hand-written, not accelerate's local_main_process_first: that one joins the process group (and imports torch)
    before the block, and here the first process checks the flags and the data before torch is imported.
    Each machine's first process (local rank 0; on one machine, rank 0) runs the block first; under torchrun or
    accelerate launch the other processes wait at its start and run it after. So a bad input is said before the
    others start, and no two processes of a machine write its datasets cache at once (each machine has its own).
    The first process joins the others only at the block's end: it checks the flags and the data before torch is
    even imported. If it stops (and says why), the others' wait fails and they exit quietly."""
    if local_rank_zero():
        yield
        join_processes()
    else:
        try:
            join_processes()
        except RuntimeError:
            sys.exit(2)
        yield


def join_processes():
    """Under a launcher: join the process group (gloo on a CPU, nccl on CUDA) and wait for every process."""
    from accelerate import PartialState
    PartialState(cpu=device_type() == "cpu").wait_for_everyone()


def leave_processes():
    """Under a launcher, all processes leave the process group together, once the work that needs it is done. A
    process that exits with the group still open can abort in its communication threads at the interpreter's
    teardown ("terminate called without an active exception"), failing a finished run."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def no_teardown_under_a_launcher():
    """Under a launcher, the process ends with its exit status once the block is done, without the interpreter's
    teardown: there a native thread torch leaves behind can abort the process ("terminate called without an active
    exception", SIGABRT) even after destroy_process_group, and the launcher then fails a finished run (the counts:
    bench/README.md, "Faults"). The exit handlers still run first (a tracker finishing its run), and the output is
    flushed. One process alone exits as usual."""
    try:
        yield
        code = 0
    except SystemExit as e:
        if processes() <= 1:
            raise
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    if processes() > 1:
        import atexit
        atexit._run_exitfuncs()  # private, but the one way to run them before os._exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@contextlib.contextmanager
def stop_cleanly_on_signals(out):
    """Ctrl-C or SIGTERM (a scheduler, `kill`) ends the run with a message; the last whole checkpoint stays."""
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        if rank_zero():
            from .search import RECORD, STORAGE
            from .settings import is_checkpoint, whole
            saved = os.path.isdir(out) and any(is_checkpoint(d) and whole(os.path.join(out, d))
                                               for d in os.listdir(out))
            searched = os.path.exists(os.path.join(out, STORAGE))
            what = "train the final run, the search done," if os.path.exists(os.path.join(out, RECORD)) else \
                "go on with the search from the trials done"
            again = "run again with --resume (and the same flags)"
            print(f"\ninterrupted; {again} to continue from the last checkpoint in {out}" if saved
                  else f"\ninterrupted; {again} to {what} in {out}" if searched
                  else f"\ninterrupted before the first checkpoint (saved at each epoch's end): nothing to resume; "
                  f"run again with --overwrite_output_dir to start over in {out}", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)  # None: not set from Python


def choose_precision(asked, device, main_process):
    """bf16, fp16 or no (fp32), and on a CPU with auto the matmul speeds it was chosen by."""
    import torch
    from accelerate.utils import broadcast_object_list
    if asked != "auto":
        return asked, None
    if device == "cuda":  # bf16 where the chip computes it (compute capability 8.0: A100, L4, RTX 30xx and newer);
        # a T4 or V100 would emulate it, slowly, though torch.cuda.is_bf16_supported() says yes. AMD GPUs (ROCm)
        # report their architecture instead: bf16 from the MI200 (gfx90a) and RDNA3 (gfx11) on.
        if torch.version.hip:
            arch = torch.cuda.get_device_properties(0).gcnArchName
            return ("bf16" if arch.startswith(("gfx90a", "gfx94", "gfx95", "gfx11", "gfx12")) else "fp16"), None
        return ("bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"), None
    if device == "mps":
        return "no", None  # autocast on Apple's GPU is not measured here (no Mac)
    # bf16 pays only where the CPU multiplies bf16 faster than fp32 (AMX, some AVX512-BF16 chips); elsewhere it is
    # slower, and far slower where it is emulated. So rank 0 measures, and every process gets the same answer.
    speed = [{"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)} if main_process else None]
    broadcast_object_list(speed)
    return ("bf16" if speed[0]["bf16"] > 1.2 * speed[0]["fp32"] else "no"), speed[0]  # 1.2: past a short timing's noise


def matmul_gflops(dtype, n=512, seconds=0.05):
    """How fast this CPU multiplies n x n matrices in dtype: one untimed product, then as many as fit in `seconds`."""
    import torch
    a = torch.randn(n, n).to(dtype)
    a @ a
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        a @ a
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def eval_batch_size(device, precision):
    """64 on a GPU. On a CPU, 4, except in bf16 on one with AMX tiles, whose kernels fill up only on bigger batches:
    the rule fits every kind of CPU measured so far (bench/README.md)."""
    import torch
    if device != "cpu":
        return 64
    return 16 if precision == "bf16" and torch.cpu._is_amx_tile_supported() else 4


def precision_text(precision, speed):
    text = "fp32" if precision == "no" else precision
    if speed:
        chosen, other = ("bf16", "fp32") if precision == "bf16" else ("fp32", "bf16")
        text += f" (matmul {speed[chosen]:.3g} vs {speed[other]:.3g} GFLOP/s in {other})"
    return text
