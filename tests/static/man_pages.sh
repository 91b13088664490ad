#!/usr/bin/env bash
# Static check that the manual pages keep up with the programs (no root, no
# daemon running):
#  - every command (verb) that `kvmnetctl --help` lists, and every option
#    it names, is a term of kvmnetctl(1), and every command the page
#    describes is one that --help lists;
#  - every option that `kvmnetd --help` names is a term of kvmnetd(8);
#  - every page the unit's Documentation= names (man:NAME(SECTION)) is one
#    of the built pages, and no http(s) URL is left there;
#  - groff reads every page without a warning.
# The pages are the generated roff (what `meson install` installs): a term is
# a line starting with the bold word, `\fBport attach\fR ...`.
# Usage: man_pages.sh KVMNETCTL KVMNETD UNIT PAGE...
set -euo pipefail
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

# The verbs: the first word of each line of the Commands section (two
# words for port, host and forward), and a verb after "| " ("stop NET |
# delete NET").
help=$("$kvmnetctl" --help)
commands=$(sed -n '/^Commands:/,/^$/p' <<<"$help")
mapfile -t verbs < <(
    {
        awk '/^  [a-z]/ { if ($1 == "port" || $1 == "host" || $1 == "forward") print $1 " " $2; else print $1 }' <<<"$commands"
        grep -oE '\| [a-z]+ NET' <<<"$commands" | awk '{ print $2 }'
    } | sort -u
)
# A --help whose layout changed must not make this check pass on nothing.
((${#verbs[@]} >= 20)) || fail "found only ${#verbs[@]} verbs in kvmnetctl --help: ${verbs[*]}"
for verb in "${verbs[@]}"; do
    is_term "$ctl_page" "$verb" || fail "kvmnetctl --help lists '$verb', kvmnetctl.1 has no term for it"
done
echo "kvmnetctl.1 describes the ${#verbs[@]} verbs of kvmnetctl --help: ${verbs[*]}"

# And the other way round: every command the page's COMMANDS section
# describes is one that kvmnetctl --help lists (no verb the program lost).
# (A term is the line before .RS 4: scdoc indents a definition that way.)
mapfile -t described < <(sed -n '/^\.SH COMMANDS/,/^\.SH [^C]/p' "$ctl_page" |
    awk '$0 == ".RS 4" { print previous } { previous = $0 }' |
    sed -nE 's/^\\fB([a-z]+( [a-z]+)?)\\fR.*/\1/p' | sort -u)
((${#described[@]} > 0)) || fail "found no command in the COMMANDS section of kvmnetctl.1"
for verb in "${described[@]}"; do
    printf '%s\n' "${verbs[@]}" | grep -qxF -- "$verb" ||
        fail "kvmnetctl.1 describes '$verb', kvmnetctl --help does not list it"
done
echo "kvmnetctl.1's COMMANDS describe ${#described[@]} verbs, all listed by kvmnetctl --help"

mapfile -t options < <(grep -oE '(^|[ [])--[a-z][a-z0-9-]*' <<<"$help" | sed 's/^[ [ ]*//' | sort -u)
((${#options[@]} >= 20)) || fail "found only ${#options[@]} options in kvmnetctl --help"
for option in "${options[@]}"; do
    grep -qF -- "$(printf '\\fB%s\\fR' "$option")" "$ctl_page" ||
        fail "kvmnetctl --help names $option, kvmnetctl.1 does not"
done
echo "kvmnetctl.1 names the ${#options[@]} options of kvmnetctl --help"

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
