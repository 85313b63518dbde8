"""GPU layouts that cannot deadlock, checked on a Ray that declares one logical GPU on this
CPU machine: the GSM8K pipeline's layout (sampling, rationalization, training and
evaluation each wanting the one GPU) runs to the end on one GPU and two CPUs, with
data-parallel workers too; operators run on the device torch sees (the CPU here). (A stage
asking for more GPUs or custom resources than the cluster has fails at once: test_ray.py.)"""

import pytest
from support import TESTS
from test_pipeline_e2e import SMALL as E2E_SMALL

import stardag

pytestmark = pytest.mark.ray

PIPELINE = TESTS.parent / "pipelines" / "star.yaml"
SMALL = [*E2E_SMALL, "loop.iterations=1"]
# as pipelines/gsm8k.yaml lays it out: every model stage on the GPU
ON_THE_GPU = [
    "stages.evaluate_base.resources={cpus: 1, gpus: 1}",
    "loop.stages.samples.resources={cpus: 1, gpus: 1}",
    "loop.stages.rationalized.resources={cpus: 1, gpus: 1}",
    "loop.stages.evaluate.resources={cpus: 1, gpus: 1}",
    "loop.stages.train.params.use_gpu=true",
    "loop.stages.train.params.workers=1",
]


@pytest.fixture(scope="module")
def one_gpu():
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(TESTS))
        mp.setenv("RAY_worker_niceness", "0")  # as stardag starts Ray: stages are the work
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
        yield ray
        ray.shutdown()


def test_the_gsm8k_gpu_layout_runs_to_the_end_on_one_logical_gpu(tmp_path, one_gpu):
    result = stardag.run(
        PIPELINE, overrides=SMALL + ON_THE_GPU, store=str(tmp_path / "s"), progress=False
    )
    assert {"samples@1", "rationalized@1", "train@1", "evaluate@1"} <= set(result.computed())


def test_data_parallel_sampling_on_one_logical_gpu_does_not_wait_forever(tmp_path, one_gpu):
    # two workers asked for, one GPU: the stage's own task holds nothing, one worker fits
    over = SMALL + ON_THE_GPU + ["loop.stages.samples.params.workers=2"]
    result = stardag.run(
        PIPELINE, overrides=over, store=str(tmp_path / "s"), progress=False, until="samples"
    )
    assert "samples@1" in result.computed()


def test_operators_run_on_the_device_torch_sees():
    import torch

    from stardag.operator import device_for

    assert device_for(0) == "cpu"
    assert device_for(1) == ("cuda" if torch.cuda.is_available() else "cpu")
