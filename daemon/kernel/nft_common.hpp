// What the nftables modules share: error construction, owners for libnftnl's C objects and the message size
// bounds. Internal to kernel/nft_*.cpp and kernel/nftables.cpp.
#pragma once

#include "kernel/c_ptr.hpp"
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

using TablePtr = CPtr<nftnl_table, nftnl_table_free>;
using ChainPtr = CPtr<nftnl_chain, nftnl_chain_free>;
using RulePtr = CPtr<nftnl_rule, nftnl_rule_free>;
using ExprPtr = CPtr<nftnl_expr, nftnl_expr_free>;
using SetPtr = CPtr<nftnl_set, nftnl_set_free>;
using SetElemPtr = CPtr<nftnl_set_elem, nftnl_set_elem_free>;
using UdataPtr = CPtr<nftnl_udata_buf, nftnl_udata_buf_free>;

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
