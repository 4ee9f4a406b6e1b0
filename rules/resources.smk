# Helpers only (no rules): what each job asks of the machine or the scheduler (GPUs, runtime, memory), from the
# configuration and the job's images, never from the host that builds the DAG.


def gpu_jobs():
    """GPUs each CUDA-using job requests (resource `gpu`, which profiles map to the scheduler): decided by the
    configuration, never by the host that submits the jobs.

    `compute.device` cpu: none; cuda or cuda:N: one. auto: for a local run (jobs run here, only --cores given),
    one when this machine has an NVIDIA driver; for a run that submits jobs (--jobs, e.g. profiles/slurm), one
    when the run declares GPUs (`resources: gpu=N` in the profile or on the command line), else the run stops:
    a login node's own hardware says nothing about the compute nodes, and silently training on CPU for a day is
    the worst outcome.
    """
    device = config["compute"]["device"]
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    declared = getattr(workflow.global_resources.get("gpu"), "value", workflow.global_resources.get("gpu"))
    # Snakemake knows a node count only where it submits jobs (--jobs, an executor or a cluster profile).
    submits_jobs = workflow.nodes is not None
    if not submits_jobs or not workflow.is_main_process:
        # Importing torch here would cost seconds on every DAG build; the driver's presence is enough.
        from irnet_core.hardware import nvidia_gpu_present

        return 1 if nvidia_gpu_present() else 0
    if declared:
        return 1
    stop(
        "config key compute.device: 'auto' cannot tell from here whether the jobs' nodes have GPUs; set it to "
        "cuda (each CUDA-using job requests a GPU) or cpu, or declare the GPUs the run may use (resources: gpu=N "
        "in the profile or on the command line)"
    )


GPU_JOBS = gpu_jobs()


def shard_runtime(seconds_per_image, ids_of=part_ids):
    """Runtime (minutes) of a job over some images: a start-up allowance plus a per-image budget, doubled per
    retry. The per-image figures are generous CPU timings of VOC-sized images (a GPU is much faster), so that a
    scheduler's time limit scales with the job instead of one fixed worst case. ``ids_of``: the job's images, from
    its wildcards (default: a part's)."""

    def runtime(wildcards, attempt):
        return attempt * (10 + -(-len(ids_of(wildcards)) * seconds_per_image // 60))

    return runtime


def shard_mem_mb(bytes_per_pixel):
    """Peak memory (MB) of a shard job: a base for the process and the network, plus a per-pixel figure times the
    largest image of the shard (not the shard's size: images are processed one at a time), doubled per retry.
    Snakemake evaluates it when the job is about to run, when its inputs exist (the figures: docs/scaling.md)."""

    def mem_mb(wildcards, input, attempt):
        from irnet_core.run_plan import largest_image_pixels

        images = input.images if "images" in input.keys() else []
        cams = [input.cams] if "cams" in input.keys() else []
        pixels = largest_image_pixels(images, cams, config["dataset"]["max_image_pixels"])
        return attempt * (2000 + -(-pixels * bytes_per_pixel // 2**20))

    return mem_mb
