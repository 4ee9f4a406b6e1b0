# Relation stage (method doc §2.6): confident foreground / background / unsure labels of the training images,
# from two CAM thresholds refined by a dense CRF. CPU-bound; runs per shard.


rule mine_relations:
    input:
        cams="results/cam/shard-{shard}.zarr",
        images=shard_train_images,
        thresholds=threshold_files(("relations", "conf_fg"), ("relations", "conf_bg")),
    output:
        relations=directory("results/relations/shard-{shard}.zarr"),
    log:
        "logs/mine_relations/shard-{shard}.log",
    benchmark:
        "benchmarks/mine_relations/shard-{shard}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(200),
        runtime=shard_runtime(6, shard_ids),
    params:
        relations=config["relations"],
        dataset=dataset_params(),
        image_ids=shard_train_ids,
    script:
        "../workflow_scripts/mine_relations.py"
