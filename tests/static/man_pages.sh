#!/usr/bin/env bash
# Static check that the manual pages keep up with the programs (no root, no
# daemon running):
#  - every command (verb) that `kvmnetctl help` lists is a term of
#    kvmnetctl(1), and every command the page describes is one it lists;
#  - every option, argument and -o column that `kvmnetctl help VERB` names
#    is named in that verb's description on the page, and kvmnetctl's own options are
#    terms of its OPTIONS;
#  - every option that `kvmnetd --help` names is a term of kvmnetd(8);
#  - every page the unit's Documentation= names (man:NAME(SECTION)) is one
#    of the built pages, and no http(s) URL is left there;
#  - groff reads every page without a warning.
# The pages are the generated roff (what `meson install` installs): a term is
# a line starting with the bold word, `\fBport attach\fR ...`.
# Usage: man_pages.sh KVMNETCTL KVMNETD UNIT PAGE...
set -euo pipefail
# No `printf ... | grep -q`: grep quits at its first match, printf may then
# die of SIGPIPE, and pipefail turns a match into a failure (it did, under
# load). grep reads a process substitution instead.
kvmnetctl=$1 kvmnetd=$2 unit=$3
shift 3
pages=("$@")
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

page_named() { # NAME.SECTION: the built page's path
    local p
    for p in "${pages[@]}"; do
        [[ $(basename "$p") == "$1" ]] && { echo "$p"; return 0; }
    done
    return 1
}
is_term() { # PAGE TEXT: a line of PAGE starts with TEXT in bold
    grep -qF -- "$(printf '\\fB%s\\fR' "$2")" <(grep '^\\fB' "$1")
}

ctl_page=$(page_named kvmnetctl.1) || { echo "FAIL: kvmnetctl.1 not built"; exit 1; }
daemon_page=$(page_named kvmnetd.8) || { echo "FAIL: kvmnetd.8 not built"; exit 1; }

# The sections of CLI11's help: SECTION ARGS... prints the first word of each
# line of the section (Subcommands, Positionals, Options) of
# `kvmnetctl help ARGS...`; for Options every name ("-o,--columns": -o, --columns).
help_section() {
    local section=$1
    shift
    "$kvmnetctl" help "$@" | awk -v section="$section:" '
        /^[A-Z][A-Za-z]*:$/ { inside = ($0 == section); next }
        /^$/ { inside = 0; next }
        inside && /^  [^ ]/ {
            if (section != "Options:") { print $1; next }
            n = split($1, names, ",")
            for (i = 1; i <= n; i++) print names[i]
        }'
}

# The verbs: every subcommand of `kvmnetctl help`, two words for those with
# their own (port attach, host list, ...). `kvmnetctl help` is the help of
# `kvmnetctl --help`.
[[ $("$kvmnetctl" help) == "$("$kvmnetctl" --help)" ]] || fail "kvmnetctl help and kvmnetctl --help differ"
verbs=()
while read -r verb; do
    mapfile -t subverbs < <(help_section Subcommands "$verb")
    if ((${#subverbs[@]} == 0)); then
        verbs+=("$verb")
    else
        for sub in "${subverbs[@]}"; do verbs+=("$verb $sub"); done
    fi
done < <(help_section Subcommands)
# A help whose layout changed must not make this check pass on nothing.
((${#verbs[@]} >= 20)) || fail "found only ${#verbs[@]} verbs in kvmnetctl help: ${verbs[*]}"
for verb in "${verbs[@]}"; do
    is_term "$ctl_page" "$verb" || fail "kvmnetctl help lists '$verb', kvmnetctl.1 has no term for it"
done
echo "kvmnetctl.1 describes the ${#verbs[@]} verbs of kvmnetctl help: ${verbs[*]}"

# The COMMANDS section of the page, one line per term: VERB, a tab, and the
# text of the term and its definition, fonts stripped. (A term is the line
# before .RS 4: scdoc indents a definition that way.) A verb with several
# terms (create, forward add) gets several lines.
described_text=$(sed -n '/^\.SH COMMANDS/,/^\.SH [^C]/p' "$ctl_page" | awk '
    { line[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) {
            if (line[i + 1] == ".RS 4" && match(line[i], /^\\fB[a-z-]+( [a-z]+)?\\fR/)) {
                if (verb != "") print verb "\t" text
                verb = substr(line[i], 4, RLENGTH - 6)
                text = ""
            }
            if (verb != "") text = text " " line[i]
        }
        if (verb != "") print verb "\t" text
    }' | sed 's/\\f[BIR]//g; s/\\&//g')

# And the other way round: every command the page describes is one that
# kvmnetctl help lists (no verb the program lost).
mapfile -t described < <(cut -f1 <<<"$described_text" | sort -u)
((${#described[@]} > 0)) || fail "found no command in the COMMANDS section of kvmnetctl.1"
for verb in "${described[@]}"; do
    grep -qxF -- "$verb" < <(printf '%s\n' "${verbs[@]}") ||
        fail "kvmnetctl.1 describes '$verb', kvmnetctl help does not list it"
done
echo "kvmnetctl.1's COMMANDS describe ${#described[@]} verbs, all listed by kvmnetctl help"

# Each verb's options and arguments, as `kvmnetctl help VERB` gives them,
# are named in that verb's own description on the page: the man page and
# the help say the same.
mapfile -t global_options < <(help_section Options)
checked=0
for verb in "${verbs[@]}"; do
    # shellcheck disable=SC2086 # "forward add": two words
    mapfile -t verb_options < <(help_section Options $verb | grep -vxE -- '-h|--help')
    # shellcheck disable=SC2086
    mapfile -t arguments < <(help_section Positionals $verb)
    text=$(awk -F'\t' -v v="$verb" '$1 == v { print $2 }' <<<"$described_text")
    # A table's columns (-o), from the help's "Columns for -o:" line: the
    # page names them under the verb too.
    # shellcheck disable=SC2086
    mapfile -t columns < <("$kvmnetctl" help $verb |
        sed -n 's/^Columns for -o: \([^ ]*\)\( (and by -o only: \(.*\)).*\)\{0,1\}$/\1,\3/p' | tr ',' '\n' | grep .)
    for word in "${verb_options[@]}" "${arguments[@]}" "${columns[@]}"; do
        checked=$((checked + 1))
        # An option as a word of its own, an argument as GUEST:GUESTPORT
        # or _FILE_... in the text.
        grep -qE -- "(^|[^a-z-])$word([^a-z-]|$)" <<<"$text" ||
            fail "kvmnetctl help $verb names $word, kvmnetctl.1's description of $verb does not"
    done
    # And no option the verb lost: every --option of the description is
    # the verb's or kvmnetctl's own, or one the text refers to (another
    # verb's, named with that verb: "started with --confirm-timeout").
    while read -r word; do
        grep -qxF -- "$word" < <(printf '%s\n' "${verb_options[@]}" "${global_options[@]}") ||
            grep -qE -- "with $word" <<<"$text" ||
            fail "kvmnetctl.1's description of $verb names $word, kvmnetctl help $verb does not"
    done < <(grep -oE -- '(^|[ [(,|])--[a-z][a-z0-9-]*' <<<"$text" | sed 's/^[ [(,|]*//' | sort -u)
done
((checked >= 60)) || fail "found only $checked options and arguments in the verbs' help"
echo "kvmnetctl.1 names the $checked options, arguments and -o columns of the verbs' help, each under its verb"

# The options of kvmnetctl itself are terms of OPTIONS.
mapfile -t options < <(help_section Options)
((${#options[@]} >= 8)) || fail "found only ${#options[@]} options in kvmnetctl help"
for option in "${options[@]}"; do
    grep -qF -- "$(printf '\\fB%s\\fR' "$option")" <(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' "$ctl_page") ||
        fail "kvmnetctl help names $option, the OPTIONS of kvmnetctl.1 do not"
done
echo "kvmnetctl.1's OPTIONS name the ${#options[@]} options of kvmnetctl: ${options[*]}"

daemon_help=$("$kvmnetd" --help)
mapfile -t flags < <(grep -oE '^  +--?[a-z][a-z0-9-]*' <<<"$daemon_help" | tr -d ' ' | sort -u)
((${#flags[@]} >= 6)) || fail "found only ${#flags[@]} flags in kvmnetd --help"
for flag in "${flags[@]}" --help -h; do
    is_term "$daemon_page" "$flag" || fail "kvmnetd --help names $flag, kvmnetd.8 has no term for it"
done
echo "kvmnetd.8 describes the flags of kvmnetd --help: ${flags[*]} --help -h"

documentation=$(sed -n 's/^Documentation=//p' "$unit")
[[ -n $documentation ]] || fail "$unit has no Documentation="
for ref in $documentation; do
    if [[ $ref =~ ^man:([^()]+)\(([0-9])\)$ ]]; then
        page_named "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" >/dev/null ||
            fail "$unit: Documentation=$ref is not a page that is built and installed"
    else
        fail "$unit: Documentation=$ref is not a man: reference to an installed page"
    fi
done
echo "the unit's Documentation= names built pages: $documentation"

if command -v groff >/dev/null; then
    for page in "${pages[@]}"; do
        warnings=$(groff -man -ww -z "$page" 2>&1) || true
        [[ -z $warnings ]] || fail "groff warns about $(basename "$page"): $warnings"
    done
    echo "groff reads the ${#pages[@]} pages without a warning"
fi

((failures == 0)) || exit 1
echo "PASS"
