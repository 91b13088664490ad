#!/usr/bin/env python3
"""bench-nft-start.py [--at 0,1000] [--runs 20] [--shape sets|chains|both]

The kernel's commit of one more NAT network's start into table inet kvmnet
holding N networks, measured with nft(8) in a throwaway network namespace
(created and deleted here; nothing else is touched). Two shapes, written as
the planner renders them for a NAT network without uplink, IPv6 or limits:

  chains  the verdict-map shape (before issue 17 item 3): a start adds the
          network's 7 chains (15 rules) and 7 `jump` elements, after which
          the kernel validates every chain reachable from the base chains;
  sets    the data-set shape: a start adds 10 set elements (no jump; 9
          before guest_bridges, masqfast).

The figure is the time of nft's batch sendmsg (strace -T): the kernel
processes and commits the batch inside it, so nft's own parsing and cache
reads are left out. The network is deleted again (untimed) after each run.
Prints one CSV row per sample: shape,networks,ms. Needs root, nft, strace.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

FWD = """
	map fwd4 { type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service; counter; }
	map fwd4_any { type inet_proto . inet_service : ipv4_addr . inet_service; counter; }
	chain nat_prerouting {
		type nat hook prerouting priority -100; policy accept;
		dnat ip to meta l4proto . ip daddr . th dport map @fwd4
		meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @fwd4_any
	}
	chain nat_output {
		type nat hook output priority -100; policy accept;
		dnat ip to meta l4proto . ip daddr . th dport map @fwd4
		meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @fwd4_any
	}
"""

CHAINS_FIXED = FWD + """
	map guard_by_iif { type ifname : verdict; }
	map first_by_oif { type ifname : verdict; }
	map barred_by_iif { type ifname : verdict; }
	map inbound_by_oif { type ifname : verdict; }
	map outbound_by_iif { type ifname : verdict; }
	map hairpin_by_oif { type ifname : verdict; }
	map masquerade_by_iif { type ifname : verdict; }
	chain guest_prerouting {
		type filter hook prerouting priority -300; policy accept;
		iifname vmap @guard_by_iif
	}
	chain guest_forward {
		type filter hook forward priority 0; policy accept;
		oifname vmap @first_by_oif
		iifname vmap @barred_by_iif
		oifname vmap @inbound_by_oif
		iifname vmap @outbound_by_iif
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname vmap @hairpin_by_oif
		iifname vmap @masquerade_by_iif
	}
"""


def chains_part(i):
    n, br, sub = f"n{i}", f"br{i}", f"10.{i // 250}.{i % 250}.0/24"
    chains = {
        "guard": ['ip daddr 127.0.0.0/8 counter drop', 'ip saddr 127.0.0.0/8 counter drop'],
        "first": [f'ip daddr {sub} ct state established,related accept', f'iifname "{br}" accept'],
        "barred": ['ip6 saddr ::/0 counter drop', f'ip saddr != {sub} counter drop'],
        "inbound": [f'ip daddr {sub} ct status dnat accept', 'counter drop'],
        "outbound": [f'ip saddr {sub} accept'],
        "hairpin": [f'ct status dnat ip saddr {sub} masquerade', 'ct status dnat ip saddr 127.0.0.0/8 masquerade'],
        "masquerade": [f'ip saddr {sub} ip daddr 224.0.0.0/24 return',
                       f'ip saddr {sub} ip daddr 255.255.255.255 return',
                       f'ip saddr {sub} ip daddr != {sub} masquerade'],
    }
    maps = {"guard": "guard_by_iif", "first": "first_by_oif", "barred": "barred_by_iif",
            "inbound": "inbound_by_oif", "outbound": "outbound_by_iif", "hairpin": "hairpin_by_oif",
            "masquerade": "masquerade_by_iif"}
    add, delete = [], []
    for g, rules in chains.items():
        chain = f"net_{n}_{g}"
        add.append(f"add chain inet kvmnet {chain}")
        for r in rules:
            add.append(f'add rule inet kvmnet {chain} {r} comment "{n}: x"')
    for g, m in maps.items():
        add.append(f'add element inet kvmnet {m} {{ "{br}" comment "{n}" : jump net_{n}_{g} }}')
        delete.append(f'delete element inet kvmnet {m} {{ "{br}" }}')
    for g in chains:
        delete.append(f"delete chain inet kvmnet net_{n}_{g}")
    return add, delete


SETS_FIXED = FWD + """
	set guest_bridges { type ifname; }
	set nat_bridges { type ifname; }
	set forwarding_bridges { type ifname; }
	set same_bridge { type ifname . ifname; }
	set net4 { type ifname . ipv4_addr; flags interval; }
	set net6 { type ifname . ipv6_addr; flags interval; }
	set drops_loopback_dst { type ifname; counter; }
	set drops_loopback_src { type ifname; counter; }
	set drops_spoofed6 { type ifname; counter; }
	set drops_spoofed { type ifname; counter; }
	set drops_inbound { type ifname; counter; }
	chain guest_prerouting {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 127.0.0.0/8 iifname @drops_loopback_dst counter drop
		ip saddr 127.0.0.0/8 iifname @drops_loopback_src counter drop
	}
	chain guest_forward {
		type filter hook forward priority 0; policy accept;
		ct state established,related iifname != @guest_bridges oifname . ip daddr @net4 accept
		ct state established,related iifname . ip saddr @net4 oifname != @guest_bridges accept
		ct state established,related iifname . ip saddr @net4 oifname . ip daddr @net4 accept
		ct state established,related oifname . ip6 daddr @net6 iifname != @guest_bridges accept
		ct state established,related iifname . ip6 saddr @net6 oifname != @guest_bridges accept
		ct state established,related iifname . ip6 saddr @net6 oifname . ip6 daddr @net6 accept
		iifname . oifname @same_bridge accept
		iifname . ip6 saddr != @net6 iifname @drops_spoofed6 counter drop
		iifname . ip saddr != @net4 iifname @drops_spoofed counter drop
		ct status dnat oifname @nat_bridges oifname . ip daddr @net4 accept
		oifname @drops_inbound counter drop
		iifname @forwarding_bridges accept
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100; policy accept;
		ct status dnat oifname @nat_bridges oifname . ip saddr @net4 masquerade
		ct status dnat oifname @nat_bridges ip saddr 127.0.0.0/8 masquerade
		iifname @nat_bridges iifname . ip saddr @net4 ip daddr 224.0.0.0/24 return
		iifname @nat_bridges iifname . ip saddr @net4 ip daddr 255.255.255.255 return
		iifname @nat_bridges iifname . ip saddr @net4 iifname . ip daddr != @net4 masquerade
	}
"""


def sets_part(i):
    n, br, sub = f"n{i}", f"br{i}", f"10.{i // 250}.{i % 250}.0/24"
    elements = [("guest_bridges", f'"{br}"'), ("nat_bridges", f'"{br}"'), ("forwarding_bridges", f'"{br}"'), ("same_bridge", f'"{br}" . "{br}"'),
                ("net4", f'"{br}" . {sub}'), ("drops_loopback_dst", f'"{br}"'), ("drops_loopback_src", f'"{br}"'),
                ("drops_spoofed6", f'"{br}"'), ("drops_spoofed", f'"{br}"'), ("drops_inbound", f'"{br}"')]
    add = [f'add element inet kvmnet {s} {{ {k} comment "{n}" }}' for s, k in elements]
    delete = [f"delete element inet kvmnet {s} {{ {k} }}" for s, k in elements]
    return add, delete


SHAPES = {"chains": (CHAINS_FIXED, chains_part), "sets": (SETS_FIXED, sets_part)}


def nft(ns, text, timed=False):
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        cmd = ["ip", "netns", "exec", ns]
        if timed:
            cmd += ["strace", "-f", "-T", "-e", "trace=sendmsg", "-o", path + ".trace"]
        subprocess.run(cmd + ["nft", "-f", path], check=True)
        if not timed:
            return None
        times = [float(m) for m in re.findall(r"<([0-9.]+)>", open(path + ".trace").read())]
        os.unlink(path + ".trace")
        return max(times) * 1000.0
    finally:
        os.unlink(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--at", default="0,1000")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--shape", default="both", choices=["sets", "chains", "both"])
    a = p.parse_args()
    shapes = ["chains", "sets"] if a.shape == "both" else [a.shape]
    rows = []
    for shape in shapes:
        fixed, part = SHAPES[shape]
        for at in [int(x) for x in a.at.split(",")]:
            ns = f"nftstart-{os.getpid()}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            try:
                nft(ns, "table inet kvmnet {" + fixed + "}\n")
                body = []
                for i in range(at):
                    body += part(i)[0]
                for k in range(0, len(body), 5000):
                    nft(ns, "\n".join(body[k:k + 5000]) + "\n")
                add, delete = part(at)
                samples = []
                for _ in range(a.runs):
                    samples.append(nft(ns, "\n".join(add) + "\n", timed=True))
                    nft(ns, "\n".join(delete) + "\n")
                for s in samples:
                    print(f"{shape},{at},{s:.3f}")
                rows.append((shape, at, statistics.median(samples)))
            finally:
                subprocess.run(["ip", "netns", "delete", ns], check=True)
    for shape, at, med in rows:
        print(f"# {shape} at {at}: median {med:.3f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
