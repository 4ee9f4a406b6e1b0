# Report assets (figures for a sample of images, training curves); built by `snakemake --report`.
