# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which extra SGLang server arguments the priming policy refuses, and why.

Also the one place that reads extra server arguments as SGLang does (``read_args``): every scanner of the
runtime (moe.py, deepgemm.py, serving_inputs.py, the mamba policy) asks it, so ``--ep-s 8`` is ``--ep-size 8``
everywhere, as SGLang's argparse parser (allow_abbrev on) reads it, from SGLang's own option table
(sglang_options.py, checked against the real parser by tests/contract).

Stdlib only, no imports from the package but the option table: the container runtime (container/argv.py,
before any stage work) and the host (the prime role's preflight through the sglang.prep.server_args lookup,
the sglang_stage module) apply the same check.
"""

from __future__ import annotations

from .sglang_options import OPTIONS, SGLANG_VERSION

# Flags the canonical policy owns; extra server args may not restate them, nor abbreviate them (--tp is read
# as --tp-size by the parser, and refused as such).
RESERVED_FLAGS = (
    "--model-path", "--model", "--host", "--port", "--tp-size", "--tensor-parallel-size",
    "--kv-cache-dtype", "--mem-fraction-static", "--chunked-prefill-size",
    "--max-prefill-tokens", "--context-length",
    "--disable-cuda-graph", "--cuda-graph-backend-decode", "--cuda-graph-backend-prefill",
    "--disable-decode-cuda-graph", "--disable-prefill-cuda-graph",
    "--enable-metrics", "--enable-trace", "--enable-torch-compile",
)


# Options that set reserved settings indirectly (sglang-facts.md 10): --config merges a YAML file of server
# arguments into the command line (server_args.py prepare_server_args), and --cuda-graph-config's JSON "wins over
# the per-phase --cuda-graph-* convenience flags" (fields/exec_.py), so it can turn the decode CUDA graph off.
INDIRECT_FLAGS = {
    "--config": "merges a YAML file of server arguments into the command line, where any setting the priming "
                "policy owns could be restated; pass the arguments you need as extra server arguments instead",
    "--cuda-graph-config": "replaces the per-phase --cuda-graph-* settings and can turn the decode CUDA graph off, "
                           "and torch.compile (the inductor stage) runs only inside decode CUDA-graph capture; set "
                           "captured batch sizes with --cuda-graph-max-bs-decode or --cuda-graph-bs-decode instead",
}
GUARDED_FLAGS = RESERVED_FLAGS + tuple(INDIRECT_FLAGS)


def _flag_name(arg):
    return arg.split("=", 1)[0]


def guarded_targets(name):
    """The guarded flags SGLang's parser may read ``name`` as: itself, or every flag it abbreviates.

    SGLang builds its parser with argparse's allow_abbrev on, so ``--mem-fraction`` is read as
    ``--mem-fraction-static``. A name that is a prefix of a guarded flag is either read as that flag
    (unambiguous) or refused by SGLang (ambiguous); either way it has no place among the extra
    arguments. tests/contract checks that no other option of the real parser is such a prefix.
    """
    if not name.startswith("--") or len(name) <= 2:
        return []
    if name in GUARDED_FLAGS:
        return [name]
    return [flag for flag in GUARDED_FLAGS if flag.startswith(name)]


def extra_arg_problem(arg):
    """Why an extra server argument cannot be passed (one line naming it), or None."""
    name = _flag_name(arg)
    targets = guarded_targets(name)
    if not targets:
        return None
    if targets == [name]:
        if name in INDIRECT_FLAGS:
            return "extra server argument %r is refused: %s %s" % (arg, name, INDIRECT_FLAGS[name])
        return ("extra server argument %r overrides %s, which the priming policy sets itself; "
                "remove it from the extra server arguments" % (arg, name))
    return ("extra server argument %r abbreviates %s (SGLang's parser accepts any unambiguous prefix of a flag), "
            "which the priming policy sets itself; remove it from the extra server arguments"
            % (arg, " or ".join(targets)))


def extra_args_problems(extra_args):
    """One line per extra server argument that restates or abbreviates a guarded flag, or one line when SGLang's
    parser would refuse the arguments (unknown, ambiguous, missing a value); empty: all fine."""
    problems = [problem for problem in (extra_arg_problem(arg) for arg in extra_args if isinstance(arg, str)) if problem]
    if not problems:
        try:
            read_args(extra_args)
        except ArgsError as exc:
            problems.append("SGLang %s's server would refuse the extra server arguments %s: %s" % (
                SGLANG_VERSION, " ".join(str(arg) for arg in extra_args), exc))
    return problems


class ArgsError(ValueError):
    """Extra server arguments SGLang's parser would refuse (unknown, ambiguous, or missing a value)."""


def option_for(name):
    """The option string SGLang's parser reads ``name`` as (exact, or its one unambiguous prefix match).

    Raises ArgsError, with argparse's wording, for an unknown or an ambiguous name.
    """
    if name in OPTIONS:
        return name
    matches = sorted(option for option in OPTIONS if option.startswith(name)) if name.startswith("--") else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ArgsError("ambiguous option: %s could match %s" % (name, ", ".join(matches)))
    raise ArgsError("unrecognized arguments: %s" % name)


def read_args(extra_args):
    """{dest: value} as SGLang's parser reads the extra server arguments (the last occurrence wins).

    A value is the string given (arity 1 and "?"), a list of strings (arity "+"/"*"), or True (arity 0).
    Raises ArgsError where SGLang's parser would exit with an error.
    """
    args = [str(arg) for arg in extra_args]
    values = {}
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if not token.startswith("-") or token == "-":
            raise ArgsError("unrecognized arguments: %s" % token)
        name, has_inline, inline = token.partition("=")
        option = option_for(name)
        dest, arity = OPTIONS[option]
        if arity == 0:
            if has_inline:
                raise ArgsError("argument %s: ignored explicit argument %r" % (option, inline))
            values[dest] = True
        elif arity in ("+", "*"):
            taken = [inline] if has_inline else []
            while not has_inline and index < len(args) and not args[index].startswith("--"):
                taken.append(args[index])
                index += 1
            if arity == "+" and not taken:
                raise ArgsError("argument %s: expected at least one argument" % option)
            values[dest] = taken
        elif has_inline:
            values[dest] = inline
        elif arity == "?":
            if index < len(args) and not args[index].startswith("-"):
                values[dest] = args[index]
                index += 1
            else:
                values[dest] = None
        else:
            if index >= len(args) or args[index].startswith("--"):
                raise ArgsError("argument %s: expected one argument" % option)
            values[dest] = args[index]
            index += 1
    return values


def arg_value(extra_args, dest, default=None):
    """One setting as SGLang reads it from the extra server arguments, or ``default`` when they do not set it."""
    return read_args(extra_args).get(dest, default)
