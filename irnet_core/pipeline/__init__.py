"""Stage entry points called by the workflow scripts: explicit arguments in, files out."""
