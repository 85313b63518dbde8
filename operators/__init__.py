"""stardag's operator library. Each operator is one module; this map gives their short names.

Modules here keep their imports light at module level (torch, transformers and ray are
imported inside `run`), so that planning a cached pipeline never pays for them."""

BUILTIN = {
    "arithmetic": "operators.arithmetic:Arithmetic",
    "char_model": "operators.char_model:CharModel",
    "hf_model": "operators.hf_model:HFModel",
    "gsm8k": "operators.gsm8k:GSM8K",
    "commonsenseqa": "operators.commonsenseqa:CommonsenseQA",
    "fewshot_prompt": "operators.fewshot_prompt:FewshotPrompt",
    "sample": "operators.sample:Sample",
    "verify": "operators.verify:Verify",
    "hint_rationalize": "operators.hint_rationalize:HintRationalize",
    "dedupe": "operators.dedupe:Dedupe",
    "shard_train": "operators.shard_train:ShardTrain",
    "evaluate": "operators.evaluate:Evaluate",
}
