// What the nftables modules share: error construction, owners for libnftnl's C objects and the message size
// bounds. Internal to kernel/nft_*.cpp and kernel/nftables.cpp.
#pragma once

#include "model/error.hpp"

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <system_error>

namespace kvmnet::kernel::nft {

inline std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

inline Error kernel_error(const std::string& what, int error)
{
    return Error(ErrorKind::Kernel, "nftables: " + what + ": " + errno_text(error));
}

// Plan defects found before anything is sent; replace_table() adds the context.
inline Error invalid_plan(const std::string& what) { return Error(ErrorKind::InvalidArgument, what); }

// ---- RAII for the C objects -----------------------------------------------------------------------------------------

struct TableFree {
    void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainFree {
    void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleFree {
    void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprFree {
    void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct SetFree {
    void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct SetElemFree {
    void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
struct UdataFree {
    void operator()(nftnl_udata_buf* b) const { nftnl_udata_buf_free(b); }
};

using TablePtr = std::unique_ptr<nftnl_table, TableFree>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainFree>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleFree>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprFree>;
using SetPtr = std::unique_ptr<nftnl_set, SetFree>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, SetElemFree>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataFree>;

template <typename T>
T* checked(T* p)
{
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

// nftnl serialises without bounds checks, so every message gets a reserved
// worst case. Each expression is well under 128 bytes on the wire; names and
// the comment are counted separately.
constexpr std::size_t message_overhead = 512;
constexpr std::size_t bytes_per_expression = 256;

}  // namespace kvmnet::kernel::nft
