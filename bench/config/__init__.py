"""The run config: typed section models (pydantic), parsed once from their layers, carried typed.

One concept per file:
- run.py: the harness's sections and the RunConfig a run carries, its JSON and its run id;
- layers.py: the layers (default < suite < preset < sweep < per_method < set), resolved with their sources;
- parse.py: a mapping into a section model, pydantic's errors as one line naming the key;
- dotted.py: dotted keys (`a.b.c`), `--set` values;
- show.py: `mbench config`, every effective value with the layer that set it.
A method declares only its own section model and presets (methods/<name>/config.py, no torch).
"""
