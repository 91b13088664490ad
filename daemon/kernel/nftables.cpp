// nftables adapter: turns a plan::Table into libnftnl objects (nft_rules)
// and commits it over NETLINK_NETFILTER in one nfnetlink batch (nft_batch),
// so the kernel applies the whole table atomically or not at all; reads sets,
// rule counters and chains back with dumps, values through nft_codec.
#include "kernel/nftables.hpp"

#include "kernel/nft_codec.hpp"
#include "kernel/nft_common.hpp"
#include "kernel/nft_rules.hpp"
#include "plan/table_diff.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvmnet::kernel {

using namespace nft;

namespace {

bool is_verdict_map(const plan::Set& set) { return set.data == std::vector<plan::SetType>{plan::SetType::verdict}; }

// A refused table commit as a typed error. Every set and chain a rule names
// is in the same batch, so ENOENT for a rule means the kernel does not know
// one of its expression types: a kernel built without that nftables module.
[[noreturn]] void throw_commit_error(int error, std::uint32_t seq, const Batch& batch,
                                     const std::map<std::size_t, std::vector<std::string>>& step_modules,
                                     const std::string& doing)
{
    const auto used = step_modules.find(seq - batch.first_seq() - 1);
    if (error == ENOENT && used != step_modules.end()) {
        std::string modules;
        for (const std::string& m : used->second) {
            if (!modules.empty()) modules.append(", ");
            modules.append(m);
        }
        throw Error(ErrorKind::Unsupported, "nftables: " + doing + " failed: the kernel lacks an nftables " +
                                                "expression " + batch.what(seq) + " needs (it uses " + modules +
                                                "): " + errno_text(error));
    }
    throw Error(ErrorKind::Kernel,
                "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
}

}  // namespace

Nftables::Nftables() = default;
Nftables::~Nftables() = default;

void Nftables::replace_table(const plan::Table& table)
{
    const std::string doing = "committing table inet " + table.name;

    // Build and validate everything before the first byte goes to the kernel.
    TablePtr t;
    std::vector<SetPtr> sets;
    struct SetElements {
        std::uint32_t set_id;
        const plan::Set* set;
        std::vector<EncodedElement> elements;
        std::vector<ElementChunk> chunks;
    };
    std::vector<SetElements> elements;
    SetIndex set_index;
    std::vector<ChainPtr> chains;
    std::vector<RulePtr> rules;
    std::vector<Batch::Step> steps;
    std::map<std::size_t, std::vector<std::string>> step_modules;  // step index -> optional modules it uses
    try {
        check_name("table", table.name);
        t = make_table(table.name);
        const std::size_t table_bound = message_overhead + table.name.size();
        steps.push_back({table_bound, "adding table"});
        steps.push_back({table_bound, "deleting table"});
        steps.push_back({table_bound, "adding table"});
        for (const plan::Set& set : table.sets) {
            const auto id = static_cast<std::uint32_t>(sets.size() + 1);
            if (!set_index.emplace(set.name, SetInfo{&set, id}).second) {
                throw invalid_plan("set @" + set.name + " declared twice");
            }
            sets.push_back(make_set(table.name, set, id));
            steps.push_back({message_overhead + table.name.size() + set.name.size() + NFT_USERDATA_MAXLEN,
                             "adding set " + set.name});
            if (set.elements.empty()) continue;
            SetElements e{id, &set, encode_elements(set, set.elements, true), {}};
            e.chunks = chunk_elements(e.elements, table.name, set.name);
            if (!is_verdict_map(set))
                for (const ElementChunk& c : e.chunks)
                    steps.push_back({c.bound, chunk_text(c, e.elements.size(), "adding", set.name)});
            elements.push_back(std::move(e));
        }
        for (const plan::Chain& chain : table.chains) {
            chains.push_back(make_chain(table.name, chain));
            steps.push_back({message_overhead + table.name.size() + chain.name.size() + chain.type.size(),
                             "adding chain " + chain.name});
        }
        for (const SetElements& e : elements)
            if (is_verdict_map(*e.set))
                for (const ElementChunk& c : e.chunks)
                    steps.push_back({c.bound, chunk_text(c, e.elements.size(), "adding", e.set->name)});
        for (const plan::Chain& chain : table.chains) {
            std::size_t index = 0;
            for (const plan::Rule& rule : chain.rules) {
                std::size_t expressions = 0;
                std::vector<std::string> modules;
                rules.push_back(make_rule(table.name, chain.name, rule, set_index, expressions, modules));
                if (!modules.empty()) step_modules[steps.size()] = std::move(modules);
                steps.push_back({message_overhead + table.name.size() + chain.name.size() + rule.comment.size() +
                                     expressions * bytes_per_expression,
                                 "adding rule " + std::to_string(++index) + " to chain " + chain.name});
            }
        }
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    Batch batch(transport_.next_seq(), steps);
    std::size_t i = 0;
    put_replacing_table(batch, i, t);
    std::size_t element_set = 0;
    for (const SetPtr& set : sets) {
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK,
                                              batch.seq(i++));
        nftnl_set_nlmsg_build_payload(nlh, set.get());
        batch.next();
        // Elements right after their set, as nft sends them; EXCL makes a
        // duplicate in the plan an error instead of a silent merge. A verdict
        // map's elements jump to chains: they wait for the chains.
        if (element_set < elements.size() &&
            elements[element_set].set_id == nftnl_set_get_u32(set.get(), NFTNL_SET_ID)) {
            const SetElements& e = elements[element_set++];
            if (is_verdict_map(*e.set)) continue;
            for (const ElementChunk& c : e.chunks) {
                put_elements(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, batch.seq(i++), table.name,
                             e.set->name, e.set_id, e.elements, c);
            }
        }
    }
    for (const ChainPtr& c : chains)
        put_chain(batch, batch.seq(i++), c);
    for (const SetElements& e : elements) {
        if (!is_verdict_map(*e.set)) continue;
        for (const ElementChunk& c : e.chunks) {
            put_elements(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, batch.seq(i++), table.name, e.set->name,
                         e.set_id, e.elements, c);
        }
    }
    for (const RulePtr& r : rules)
        put_rule(batch, batch.seq(i++), r);
    const auto [error, seq] = transport_.commit(batch, doing);
    if (error != 0) throw_commit_error(error, seq, batch, step_modules, doing);
}

void Nftables::update_table(const plan::Table& table, const plan::TableDiff& diff)
{
    if (diff.replace) return replace_table(table);
    const std::string doing = "updating table inet " + table.name + " (" + diff.summary() + ")";
    if (diff.empty()) return;

    // Every message built and checked before the first byte goes to the kernel.
    struct Message {
        std::uint16_t type;
        std::uint16_t flags;
        std::function<void(nlmsghdr*)> payload;  // for table, set, chain and rule messages
        const plan::ElementChange* change = nullptr;
        std::optional<std::uint32_t> set_id;
        std::size_t encoded = 0;  // index into `encoded`
        ElementChunk chunk{};
    };
    std::vector<Message> messages;
    auto object = [](std::uint16_t type, std::uint16_t flags, std::function<void(nlmsghdr*)> payload) {
        Message m{type, flags, std::move(payload), nullptr, std::nullopt, 0, {}};
        return m;
    };
    std::vector<std::vector<EncodedElement>> encoded;
    std::vector<Batch::Step> steps;
    std::map<std::size_t, std::vector<std::string>> step_modules;
    std::vector<SetPtr> sets;
    std::vector<ChainPtr> chains;
    std::vector<RulePtr> rules;
    SetIndex set_index;
    std::vector<plan::ElementChange> added_set_elements;  // a new set's elements
    const std::size_t base = message_overhead + table.name.size();
    auto elements = [&](const plan::ElementChange& c, std::optional<std::uint32_t> set_id) {
        if (c.elements.empty()) return;
        check_name("set", c.set->name);
        encoded.push_back(encode_elements(*c.set, c.elements, c.add));
        const std::size_t index = encoded.size() - 1;
        for (const ElementChunk& chunk : chunk_elements(encoded[index], table.name, c.set->name)) {
            steps.push_back(
                {chunk.bound, chunk_text(chunk, encoded[index].size(), c.add ? "adding" : "deleting", c.set->name)});
            messages.push_back({c.add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                                static_cast<std::uint16_t>(c.add ? NLM_F_CREATE | NLM_F_EXCL : 0),
                                {},
                                &c,
                                set_id,
                                index,
                                chunk});
        }
    };
    auto chain_message = [&](std::uint16_t type, std::uint16_t flags, const plan::Chain& chain, const char* what) {
        chains.push_back(make_chain(table.name, chain));
        nftnl_chain* c = chains.back().get();
        steps.push_back({base + chain.name.size() + chain.type.size(), std::string(what) + " chain " + chain.name});
        messages.push_back(object(type, flags, [c](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, c); }));
    };
    auto flush = [&](const std::string& chain) {
        RulePtr r(checked(nftnl_rule_alloc()));
        nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
        if (nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.name.c_str()) < 0 ||
            nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str()) < 0) {
            throw std::bad_alloc();
        }
        rules.push_back(std::move(r));
        nftnl_rule* rule = rules.back().get();
        steps.push_back({base + chain.size(), "flushing chain " + chain});
        messages.push_back(
            object(NFT_MSG_DELRULE, 0, [rule](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule); }));
    };
    try {
        check_name("table", table.name);
        for (std::size_t i = 0; i < table.sets.size(); ++i) {
            const plan::Set& set = table.sets[i];
            if (!set_index.emplace(set.name, SetInfo{&set, static_cast<std::uint32_t>(i + 1)}).second)
                throw invalid_plan("set @" + set.name + " declared twice");
        }
        for (const plan::ElementChange& c : diff.removed_elements)
            elements(c, std::nullopt);
        for (const plan::Chain* chain : diff.changed_chains)
            flush(chain->name);
        for (const std::string& name : diff.removed_chains)
            flush(name);
        for (const std::string& name : diff.removed_sets) {
            check_name("set", name);
            SetPtr set(checked(nftnl_set_alloc()));
            nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
            if (nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.name.c_str()) < 0 ||
                nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str()) < 0) {
                throw std::bad_alloc();
            }
            sets.push_back(std::move(set));
            nftnl_set* s = sets.back().get();
            steps.push_back({base + name.size(), "deleting set " + name});
            messages.push_back(
                object(NFT_MSG_DELSET, 0, [s](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, s); }));
        }
        // After the sets: a verdict map's elements hold the chains they jump to.
        for (const std::string& name : diff.removed_chains)
            chain_message(NFT_MSG_DELCHAIN, 0, plan::Chain{name, "", "", 0, true, {}}, "deleting");
        // Reserved: the messages point at these.
        added_set_elements.reserve(diff.added_sets.size());
        for (const plan::Set* set : diff.added_sets) {
            const std::uint32_t id = set_index.at(set->name).id;
            sets.push_back(make_set(table.name, *set, id));
            nftnl_set* s = sets.back().get();
            steps.push_back({base + set->name.size() + NFT_USERDATA_MAXLEN, "adding set " + set->name});
            messages.push_back(object(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL,
                                      [s](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, s); }));
            added_set_elements.push_back(plan::ElementChange{set, set->elements, true});
            if (!is_verdict_map(*set)) elements(added_set_elements.back(), id);
        }
        for (const plan::Chain* chain : diff.added_chains)
            chain_message(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, *chain, "adding");
        // A new verdict map's elements jump to chains: after the chains.
        for (const plan::ElementChange& c : added_set_elements)
            if (is_verdict_map(*c.set)) elements(c, set_index.at(c.set->name).id);
        for (const plan::ElementChange& c : diff.added_elements)
            elements(c, std::nullopt);
        auto add_rules = [&](const plan::Chain& chain) {
            std::size_t index = 0;
            for (const plan::Rule& rule : chain.rules) {
                std::size_t expressions = 0;
                std::vector<std::string> modules;
                rules.push_back(make_rule(table.name, chain.name, rule, set_index, expressions, modules));
                if (!modules.empty()) step_modules[steps.size()] = std::move(modules);
                nftnl_rule* r = rules.back().get();
                steps.push_back({base + chain.name.size() + rule.comment.size() + expressions * bytes_per_expression,
                                 "adding rule " + std::to_string(++index) + " to chain " + chain.name});
                messages.push_back(object(NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE,
                                          [r](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, r); }));
            }
        };
        for (const plan::Chain* chain : diff.added_chains)
            add_rules(*chain);
        for (const plan::Chain* chain : diff.changed_chains)
            add_rules(*chain);
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    Batch batch(transport_.next_seq(), steps);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const Message& m = messages[i];
        if (m.change != nullptr) {
            put_elements(batch, m.type, m.flags, batch.seq(i), table.name, m.change->set->name, m.set_id,
                         encoded[m.encoded], m.chunk);
            continue;
        }
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(batch.current(), m.type, NFPROTO_INET, m.flags | NLM_F_ACK, batch.seq(i));
        m.payload(nlh);
        batch.next();
    }
    const auto [error, seq] = transport_.commit(batch, doing);
    if (error != 0) throw_commit_error(error, seq, batch, step_modules, doing);
}

void Nftables::delete_table(const std::string& name)
{
    const std::string doing = "deleting table inet " + name;
    TablePtr t = make_table(name);
    const std::size_t bound = message_overhead + name.size();
    Batch batch(transport_.next_seq(), {{bound, "adding table"}, {bound, "deleting table"}});
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(batch.current(), NFT_MSG_NEWTABLE, NFPROTO_INET,
                                                NLM_F_CREATE | NLM_F_ACK, batch.seq(0));
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    batch.next();
    nlh = nftnl_table_nlmsg_build_hdr(batch.current(), NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, batch.seq(1));
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    batch.next();
    const auto [error, seq] = transport_.commit(batch, doing);
    if (error != 0) {
        throw Error(ErrorKind::Kernel,
                    "nftables: " + doing + " failed: " + errno_text(error) + " (" + batch.what(seq) + ")");
    }
}

void Nftables::change_elements(const std::string& table, const std::vector<plan::ElementChange>& changes)
{
    struct Encoded {
        const plan::ElementChange* change;
        std::vector<EncodedElement> elements;
        std::vector<ElementChunk> chunks;
    };
    std::vector<Encoded> encoded;
    std::vector<Batch::Step> steps;
    std::size_t total = 0;
    for (const plan::ElementChange& c : changes)
        total += c.elements.size();
    std::string doing = "changing " + std::to_string(total) + " element(s) of table inet " + table;
    if (changes.size() == 1 && changes[0].set != nullptr) {
        const bool add = changes[0].add;
        doing = std::string(add ? "adding " : "deleting ") + std::to_string(total) + " element(s) " +
                (add ? "to" : "from") + " set inet " + table + " " + changes[0].set->name;
    }
    if (total == 0) return;
    try {
        check_name("table", table);
        for (const plan::ElementChange& c : changes) {
            if (c.set == nullptr) throw invalid_plan("an element change without a set");
            if (c.elements.empty()) continue;
            check_name("set", c.set->name);
            Encoded e{&c, encode_elements(*c.set, c.elements, c.add), {}};
            e.chunks = chunk_elements(e.elements, table, c.set->name);
            for (const ElementChunk& chunk : e.chunks)
                steps.push_back(
                    {chunk.bound, chunk_text(chunk, e.elements.size(), c.add ? "adding" : "deleting", c.set->name)});
            encoded.push_back(std::move(e));
        }
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    Batch batch(transport_.next_seq(), steps);
    std::size_t i = 0;
    for (const Encoded& e : encoded) {
        const bool add = e.change->add;
        for (const ElementChunk& chunk : e.chunks) {
            // Adding is "create": an element already there fails the whole batch.
            put_elements(batch, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, add ? NLM_F_CREATE | NLM_F_EXCL : 0,
                         batch.seq(i++), table, e.change->set->name, std::nullopt, e.elements, chunk);
        }
    }
    const auto [error, seq] = transport_.commit(batch, doing);
    if (error != 0) {
        const std::string& step = batch.what(seq);
        std::string why = errno_text(error);
        if (error == EEXIST && step.rfind("adding", 0) == 0) why = "an element is already in the set";
        if (error == ENOENT && step.rfind("deleting", 0) == 0) why = "an element (or the set) does not exist";
        throw Error(ErrorKind::Kernel, "nftables: " + doing + " failed: " + why + " (" + step + ")");
    }
}

namespace {

struct ElementDump {
    const plan::Set* set;
    Layout key;
    Layout data;
    std::vector<Nftables::ElementCounters>* out;
    bool failed = false;
};

int on_counter_expr(nftnl_expr* e, void* data)
{
    auto* counters = static_cast<Nftables::ElementCounters*>(data);
    if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
        counters->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        counters->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
        counters->has_counter = true;
    }
    return 0;
}

int on_element(nftnl_set_elem* elem, void* data)
{
    auto* dump = static_cast<ElementDump*>(data);
    Nftables::ElementCounters c;
    std::uint32_t length = 0;
    const void* key = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_KEY, &length);
    if (dump->set->interval) {
        std::uint32_t end_length = 0;
        const void* end = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_KEY_END, &end_length);
        c.element.key = decode_range(dump->set->key, dump->key, key, length, end, end_length);
    } else {
        c.element.key = decode(dump->set->key, dump->key, key, length);
    }
    if (c.element.key.empty()) {
        dump->failed = true;
        return -1;
    }
    if (!dump->set->data.empty()) {
        const void* value = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_DATA, &length);
        c.element.data = decode(dump->set->data, dump->data, value, length);
    }
    if (const void* udata = nftnl_set_elem_get(elem, NFTNL_SET_ELEM_USERDATA, &length); udata != nullptr)
        c.element.comment = udata_comment(udata, length, NFTNL_UDATA_SET_ELEM_COMMENT);
    nftnl_set_elem_expr_foreach(elem, on_counter_expr, &c);
    dump->out->push_back(std::move(c));
    return 0;
}

int on_element_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<ElementDump*>(data);
    SetPtr s(checked(nftnl_set_alloc()));
    if (nftnl_set_elems_nlmsg_parse(nlh, s.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    nftnl_set_elem_foreach(s.get(), on_element, dump);
    return dump->failed ? MNL_CB_ERROR : MNL_CB_OK;
}

}  // namespace

std::vector<Nftables::ElementCounters> Nftables::list_elements(const std::string& table, const plan::Set& set)
{
    const std::string doing = "listing set inet " + table + " " + set.name;
    std::vector<ElementCounters> out;
    ElementDump dump{&set, {}, {}, &out};
    try {
        check_name("table", table);
        check_name("set", set.name);
        dump.key = layout(set.key, "key of @" + set.name);
        if (!set.data.empty()) dump.data = layout(set.data, "data of @" + set.name);
    } catch (const Error& e) {
        throw Error(e.kind(), "nftables: " + doing + " failed: " + e.what());
    }

    SetPtr s(checked(nftnl_set_alloc()));
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    if (nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str()) < 0 ||
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str()) < 0) {
        throw std::bad_alloc();
    }
    std::vector<char> request(message_overhead + table.size() + set.name.size(), 0);
    const std::uint32_t seq = transport_.next_seq();
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(request.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());

    const int error = transport_.dump(nlh, on_element_message, &dump, doing);
    if (error == ENOENT) throw Error(ErrorKind::NotFound, "nftables: " + doing + " failed: no such set");
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
}

namespace {

struct RuleDump {
    std::vector<plan::RuleCounter>* out;
    bool failed = false;
};

int on_rule_counter(nftnl_expr* e, void* data)
{
    auto* c = static_cast<std::optional<plan::RuleCounter>*>(data);
    if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
        c->emplace();
        (*c)->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        (*c)->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
    }
    return 0;
}

int on_rule_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<RuleDump*>(data);
    RulePtr r(checked(nftnl_rule_alloc()));
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    std::optional<plan::RuleCounter> counter;
    nftnl_expr_foreach(r.get(), on_rule_counter, &counter);
    std::uint32_t length = 0;
    const void* udata = nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &length);
    if (!counter || udata == nullptr) return MNL_CB_OK;
    counter->comment = udata_comment(udata, length, NFTNL_UDATA_RULE_COMMENT);
    if (counter->comment.empty()) return MNL_CB_OK;
    if (const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)) counter->chain = chain;
    dump->out->push_back(std::move(*counter));
    return MNL_CB_OK;
}

}  // namespace

std::vector<plan::RuleCounter> Nftables::rule_counters(const std::string& table)
{
    const std::string doing = "reading the rule counters of table inet " + table;
    check_name("table", table);
    std::vector<plan::RuleCounter> out;
    RuleDump dump{&out};
    RulePtr r(checked(nftnl_rule_alloc()));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    if (nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str()) < 0) throw std::bad_alloc();
    std::vector<char> request(message_overhead + table.size(), 0);
    const std::uint32_t seq = transport_.next_seq();
    nlmsghdr* nlh =
        nftnl_rule_nlmsg_build_hdr(request.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    const int error = transport_.dump(nlh, on_rule_message, &dump, doing);
    if (error == ENOENT) return {};
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
}

namespace {

std::string family_name(std::uint32_t family)
{
    switch (family) {
    case NFPROTO_IPV4: return "ip";
    case NFPROTO_IPV6: return "ip6";
    case NFPROTO_INET: return "inet";
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_ARP: return "arp";
    case NFPROTO_NETDEV: return "netdev";
    default: return std::to_string(family);
    }
}

std::string hook_name(std::uint32_t family, std::uint32_t hook)
{
    if (family == NFPROTO_NETDEV) return hook == NF_NETDEV_INGRESS ? "ingress" : std::to_string(hook);
    if (family == NFPROTO_ARP) return hook == 0 ? "input" : hook == 1 ? "output" : "forward";
    switch (hook) {
    case NF_INET_PRE_ROUTING: return "prerouting";
    case NF_INET_LOCAL_IN: return "input";
    case NF_INET_FORWARD: return "forward";
    case NF_INET_LOCAL_OUT: return "output";
    case NF_INET_POST_ROUTING: return "postrouting";
    case NF_INET_INGRESS: return "ingress";
    default: return std::to_string(hook);
    }
}

struct ChainDump {
    std::vector<plan::ChainInfo>* out;
    bool failed = false;
};

int on_chain_message(const nlmsghdr* nlh, void* data)
{
    auto* dump = static_cast<ChainDump*>(data);
    ChainPtr c(checked(nftnl_chain_alloc()));
    if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) {
        dump->failed = true;
        return MNL_CB_ERROR;
    }
    plan::ChainInfo info;
    const std::uint32_t family = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY);
    info.family = family_name(family);
    if (const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) info.table = table;
    if (const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)) info.name = name;
    info.base = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM);
    if (info.base) {
        info.hook = hook_name(family, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM));
        info.priority = nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO);
        const bool drop = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY) &&
                          nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY) == NF_DROP;
        info.policy = drop ? "drop" : "accept";
    }
    dump->out->push_back(std::move(info));
    return MNL_CB_OK;
}

}  // namespace

std::vector<plan::ChainInfo> Nftables::list_chains()
{
    const std::string doing = "listing the nftables chains";
    std::vector<plan::ChainInfo> out;
    ChainDump dump{&out};
    std::vector<char> request(message_overhead, 0);
    const std::uint32_t seq = transport_.next_seq();
    nftnl_chain_nlmsg_build_hdr(request.data(), NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, NLM_F_DUMP | NLM_F_ACK, seq);
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(request.data());
    const int error = transport_.dump(nlh, on_chain_message, &dump, doing);
    if (error != 0) throw kernel_error(doing + " failed", dump.failed ? EBADMSG : error);
    return out;
}

std::optional<std::uint32_t> Nftables::generation() { return transport_.generation(); }

}  // namespace kvmnet::kernel
