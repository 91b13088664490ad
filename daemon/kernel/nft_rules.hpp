// The nft-compatible compiler: plan::Table pieces as libnftnl objects whose
// expressions are the ones nft(8) generates for the syntax plan::render()
// writes, so `nft list` shows a committed table exactly as the golden files
// spell it; set elements in wire form, cut into messages that fit.
#pragma once

#include "kernel/nft_batch.hpp"
#include "kernel/nft_common.hpp"
#include "plan/ruleset.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::kernel::nft {

// InvalidArgument unless `name` fits NFT_NAME_MAXLEN; `kind` is "table", "set", ...
void check_name(const std::string& kind, const std::string& name);

// A declared set with what rules need to refer to it in the same batch.
struct SetInfo {
    const plan::Set* set;
    std::uint32_t id;  // NFTA_SET_ID: names a set added earlier in the same transaction
};
using SetIndex = std::map<std::string, SetInfo, std::less<>>;

TablePtr make_table(const std::string& name);
ChainPtr make_chain(const std::string& table, const plan::Chain& chain);
// Also reports the rule's expression count (for the message bound) and the
// optional kernel modules it uses ("nft_fib_inet (fib)"), for Unsupported errors.
RulePtr make_rule(const std::string& table, const std::string& chain, const plan::Rule& rule, const SetIndex& sets,
                  std::size_t& expressions, std::vector<std::string>& modules);
SetPtr make_set(const std::string& table, const plan::Set& set, std::uint32_t id);

// An element in wire form.
struct EncodedElement {
    std::vector<unsigned char> key;
    std::vector<unsigned char> key_end;  // interval sets: the last value of the range (adding and deleting)
    std::vector<unsigned char> data;
    std::string comment;
    std::uint64_t limit_per_second = 0;  // non-zero: the element's own limit, then a counter
    std::uint32_t limit_burst = 0;
    // Verdict maps: the data is a verdict (NF_ACCEPT, NFT_JUMP, ...), with
    // the chain it jumps to.
    std::optional<std::int32_t> verdict;
    std::string chain;
};

// Keys only unless `with_data` (data, comment and limit too, as adding needs).
std::vector<EncodedElement> encode_elements(const plan::Set& set, const std::vector<plan::SetElement>& elements,
                                            bool with_data);

// Elements [begin, end) of one message, and the message's worst-case size.
struct ElementChunk {
    std::size_t begin;
    std::size_t end;
    std::size_t bound;  // of the whole message
};

std::vector<ElementChunk> chunk_elements(const std::vector<EncodedElement>& elements, const std::string& table,
                                         const std::string& set);
// "adding 3 element(s) (1 to 3) to @set", for errors.
std::string chunk_text(const ElementChunk& c, std::size_t total, const std::string& verb, const std::string& set);

// One table message (NLM_F_ACK added) with sequence number `seq`.
void put_table(Batch& batch, std::uint16_t type, std::uint16_t flags, std::uint32_t seq, const TablePtr& table);
// The three messages that replace `table` whole in one transaction (add, delete, add again: adding first makes
// the delete succeed whether or not the table exists), numbered from `i`, which is advanced past them.
void put_replacing_table(Batch& batch, std::size_t& i, const TablePtr& table);
// NEWCHAIN (create) and NEWRULE (append) messages with sequence number `seq`.
void put_chain(Batch& batch, std::uint32_t seq, const ChainPtr& chain);
void put_rule(Batch& batch, std::uint32_t seq, const RulePtr& rule);

// One NEWSETELEM / DELSETELEM message with elements [chunk.begin, chunk.end).
void put_elements(Batch& batch, std::uint16_t type, std::uint16_t flags, std::uint32_t seq, const std::string& table,
                  const std::string& set, std::optional<std::uint32_t> set_id,
                  const std::vector<EncodedElement>& elements, const ElementChunk& chunk);

}  // namespace kvmnet::kernel::nft
