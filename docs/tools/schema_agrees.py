#!/usr/bin/env python3
"""Checks that docs/schema/*.schema.json agree with Sandpiper's decoder (run by
Tests/SandpiperCLITests/SchemaCLITests.swift; needs PyYAML and jsonschema from PyPI).

usage: schema_agrees.py SCHEMA_DIR CORPUS_DIR FILE...
  FILE...     specs and policies the decoder accepts (cluster.yaml or Policies/*.yaml): the schema must accept each.
  CORPUS_DIR  the bad-spec corpus: every file whose expected diagnostics are structural (unknown field, wrong
              type, bad enum value, malformed unit) must be rejected by the schema.
Prints one line per disagreement and exits 1 if there is any.
"""
import json, os, re, sys
import yaml
import jsonschema


class CoreLoader(yaml.SafeLoader):
    """YAML 1.2 core booleans (true/false only), as libyaml-based Sandpiper reads them: `on:`/`off:` stay keys."""


CoreLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))

# Diagnostics that a schema can state: the decoder's structural messages.
STRUCTURAL = re.compile(r'unknown field|is not one of|is not a (size|bandwidth|duration|boolean|whole number|number|'
                        r'fraction|valid name)|expected a (list|mapping|string)|missing required field')


def main():
    schema_dir, corpus, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    schemas = {n: json.load(open(os.path.join(schema_dir, f"{n}.schema.json"))) for n in ("cluster", "policy")}
    problems = []
    for f in files:
        doc = yaml.load(open(f), Loader=CoreLoader)
        kind = "policy" if doc.get("kind") == "Policy" else "cluster"
        errors = list(jsonschema.Draft202012Validator(schemas[kind]).iter_errors(doc))
        for e in errors:
            problems.append(f"{f}: accepted by the decoder, rejected by the schema: {e.json_path}: {e.message}")
    checked = 0
    for name in sorted(os.listdir(corpus)):
        if not name.endswith(".yaml"):
            continue
        expected = open(os.path.join(corpus, name[:-5] + ".expected")).read()
        if not STRUCTURAL.search(expected):
            continue
        try:
            doc = yaml.load(open(os.path.join(corpus, name)), Loader=CoreLoader)
        except yaml.YAMLError:
            continue  # not YAML at all: nothing for a schema to say
        checked += 1
        if not isinstance(doc, dict) or jsonschema.Draft202012Validator(schemas["cluster"]).is_valid(doc):
            if isinstance(doc, dict):
                problems.append(f"{name}: rejected by the decoder ({expected.splitlines()[0]}), accepted by the schema")
    print(f"{len(files)} accepted files, {checked} structurally bad corpus files checked")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
