// cuDNN's backend API is a C interface of opaque descriptors: create one,
// set its attributes, finalise it, and pass it on. An SDPA step is: tensor
// descriptors for every operand (dims and strides, a unique id each), one
// SDPA operation over them, an operation graph holding that operation, the
// heuristics' ranked engine configurations for the graph, and an execution
// plan from one of them. Execution binds device pointers to the unique ids
// (a variant pack).
//
// Shapes: cuDNN's attention tensors are [batch, heads, sequence, head_dim].
// In the model's token layout, head h of token n of image b starts at row
// (n * token_stride + b * image_stride) of a buffer `width` wide, at column
// h * head_dim (q; k at D + h * head_dim, v at 2D + h * head_dim in qkv), so
// the strides are {image_stride * width, head_dim, token_stride * width, 1}.
#include "model/cuda/attention_cudnn.h"

#include <cudnn.h>

#include <array>
#include <cmath>
#include <deque>
#include <initializer_list>
#include <map>
#include <utility>

#include "model/cuda/check.h"
#include "model/cuda/device_memory.h"

namespace mone::cuda {

namespace {

std::string cudnn_message(cudnnStatus_t status) {
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::string text = cudnnGetErrorString(status);
  if (detail[0] != '\0') text += std::string(": ") + detail;
  return text;
}

// cuDNN refused a step of describing the graph: this build's cuDNN (or this
// GPU) cannot serve the shape, and the caller falls back to our kernel.
struct Declined : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void decline_on_error(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) throw Declined(std::string(what) + ": " + cudnn_message(status));
}

class Descriptor {
 public:
  explicit Descriptor(cudnnBackendDescriptorType_t type) {
    decline_on_error(cudnnBackendCreateDescriptor(type, &descriptor_), "creating a cuDNN descriptor");
  }
  ~Descriptor() {
    if (descriptor_) cudnnBackendDestroyDescriptor(descriptor_);
  }
  Descriptor(Descriptor&& other) noexcept : descriptor_(std::exchange(other.descriptor_, nullptr)) {}
  Descriptor& operator=(Descriptor&&) = delete;
  Descriptor(const Descriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return descriptor_; }
  template <class V>
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const V* values, int64_t count = 1) {
    decline_on_error(cudnnBackendSetAttribute(descriptor_, name, type, count, values), "setting a cuDNN attribute");
  }
  void set(cudnnBackendAttributeName_t name, const Descriptor& other) {
    const cudnnBackendDescriptor_t value = other.descriptor_;
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &value);
  }
  void finalize(const char* what) { decline_on_error(cudnnBackendFinalize(descriptor_), what); }

 private:
  cudnnBackendDescriptor_t descriptor_ = nullptr;
};

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kDO, kDQ, kDK, kDV };
enum class Direction : int64_t { forward, backward };

using Dims = std::array<int64_t, 4>;

Descriptor tensor(Uid uid, cudnnDataType_t type, const Dims& dims, const Dims& strides, bool by_value = false) {
  Descriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t id = uid;
  const int64_t alignment = type == CUDNN_DATA_FLOAT ? 4 : 16;
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type);
  t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), 4);
  t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4);
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &id);
  t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &alignment);
  if (by_value) {
    const bool yes = true;
    t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &yes);
  }
  t.finalize("finalising a cuDNN tensor");
  return t;
}

// The heads (model/ops.h) as cuDNN's [batch, heads, sequence, head_dim] tensors.
struct Shape : HeadView {
  Dims head_dims() const { return {images, heads, tokens, head_dim}; }
  Dims strides(int64_t width) const { return {image_stride * width, head_dim, token_stride * width, 1}; }
  Dims stats_dims() const { return {images, heads, tokens, 1}; }
  Dims stats_strides() const { return {heads * tokens, tokens, 1, 1}; }
  std::string text() const {
    return "B " + std::to_string(images) + ", N " + std::to_string(tokens) + ", " + std::to_string(heads) +
           " heads of " + std::to_string(head_dim) + (token_stride == 1 ? ", image-major" : ", token-major");
  }
};

// The operation, its graph, and the plan of the engine chosen for it; every
// descriptor the plan was built from stays alive with it.
// Each plan owns its workspace for its whole life: a CUDA graph that
// captured the plan's kernels keeps pointing at it, so it is never freed or
// replaced while the plan may still be replayed.
struct Plan {
  std::deque<Descriptor> parts;
  std::unique_ptr<Descriptor> execution;  // null: cuDNN declined the shape
  int64_t workspace_bytes = 0;
  DeviceBuffer workspace;
  float scale = 0;  // the by-value scale tensor reads it from here
};

bool nondeterministic(const Descriptor& engine) {
  std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
  int64_t count = 0;
  decline_on_error(cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                            static_cast<int64_t>(notes.size()), &count, notes.data()),
                   "reading an engine's numerical notes");
  for (int64_t i = 0; i < count; ++i)
    if (notes[static_cast<size_t>(i)] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return true;
  return false;
}

int64_t engine_index(const Descriptor& engine) {
  int64_t index = -1, count = 0;
  decline_on_error(
      cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count, &index),
      "reading an engine's index");
  return index;
}

// The heuristics' engine configurations for `graph`, best first, that give a
// deterministic plan: the first one becomes plan.execution, and its name is
// returned. Otherwise throws Declined listing what each engine said.
std::string choose_engine(cudnnHandle_t handle, const Descriptor& graph, Plan& plan) {
  std::string refusals;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::unique_ptr<Descriptor> heuristics;  // alive while its configurations are tried
    std::vector<Descriptor> configs;
    int64_t returned = 0;
    // A mode that fails (e.g. mode A finds no engine for the operation)
    // leaves the choice to the next one.
    try {
      heuristics = std::make_unique<Descriptor>(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
      heuristics->set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
      heuristics->set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode);
      heuristics->finalize("finalising the engine heuristics");
      int64_t available = 0;
      decline_on_error(cudnnBackendGetAttribute(heuristics->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &available, nullptr),
                       "counting the engine configurations");
      std::vector<cudnnBackendDescriptor_t> raw;
      for (int64_t i = 0; i < available; ++i) {
        configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        raw.push_back(configs.back().get());
      }
      decline_on_error(cudnnBackendGetAttribute(heuristics->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, available, &returned, raw.data()),
                       "reading the engine configurations");
    } catch (const Declined& failed) {
      refusals += std::string("\n  heuristics mode ") + (mode == CUDNN_HEUR_MODE_A ? "A" : "fallback") + ": " +
                  failed.what();
      continue;
    }
    for (int64_t i = 0; i < returned; ++i) {
      Descriptor& config = configs[static_cast<size_t>(i)];
      std::string name = "configuration " + std::to_string(i + 1);
      int64_t one = 0;
      try {
        Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
        cudnnBackendDescriptor_t engine_raw = engine.get();
        decline_on_error(cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &one, &engine_raw),
                         "reading a configuration's engine");
        name = "engine " + std::to_string(engine_index(engine));
        if (nondeterministic(engine)) {
          refusals += "\n  " + name + ": nondeterministic";
          continue;
        }
      } catch (const Declined& failed) {
        refusals += "\n  " + name + ": " + failed.what();
        continue;
      }
      auto execution = std::make_unique<Descriptor>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      execution->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle);
      execution->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config);
      const cudnnStatus_t status = cudnnBackendFinalize(execution->get());
      if (status != CUDNN_STATUS_SUCCESS) {
        refusals += "\n  " + name + ": " + cudnn_message(status);
        continue;
      }
      decline_on_error(cudnnBackendGetAttribute(execution->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                CUDNN_TYPE_INT64, 1, &one, &plan.workspace_bytes),
                       "reading the plan's workspace size");
      plan.parts.push_back(std::move(config));
      plan.execution = std::move(execution);
      return name + ", workspace " + std::to_string(plan.workspace_bytes) + " B";
    }
  }
  throw Declined("no deterministic engine" + (refusals.empty() ? std::string(" offered") : ":" + refusals));
}

}  // namespace

struct CudnnAttention::State {
  const DeviceContext& context;
  cudnnHandle_t handle = nullptr;
  using Key = std::array<int64_t, 7>;
  std::map<Key, Plan> plans;
  std::vector<std::string> report;

  explicit State(const DeviceContext& c) : context(c) {}
  // The plan of the shape, built on first use; nullptr when cuDNN declined.
  const Plan* plan(Direction direction, const Shape& shape);
  // Builds the plan and returns the engine chosen; throws Declined.
  std::string build(Direction direction, const Shape& shape, Plan& plan) const;
  void execute(const Plan& plan, std::initializer_list<std::pair<Uid, const void*>> bindings) const;
};

std::string CudnnAttention::State::build(Direction direction, const Shape& s, Plan& plan) const {
  const Dims dims = s.head_dims(), qkv_strides = s.strides(3 * s.D), row_strides = s.strides(s.D);
  const Dims one = {1, 1, 1, 1};
  // A deque: the references handed out stay valid as parts are added.
  auto add = [&](Descriptor descriptor) -> const Descriptor& {
    plan.parts.push_back(std::move(descriptor));
    return plan.parts.back();
  };
  // Each operand: its tensor, and the attribute naming it in each direction.
  struct Operand {
    Uid uid;
    cudnnDataType_t type;
    Dims dims, strides;
    bool backward_only;
    cudnnBackendAttributeName_t forward, backward;  // forward: unused when backward_only
  };
  constexpr cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, fp32 = CUDNN_DATA_FLOAT;
  const Operand operands[] = {
      {kQ, bf16, dims, qkv_strides, false, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_QDESC},
      {kK, bf16, dims, qkv_strides, false, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_KDESC},
      {kV, bf16, dims, qkv_strides, false, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_VDESC},
      {kO, bf16, dims, row_strides, false, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, CUDNN_ATTR_OPERATION_SDPA_BWD_ODESC},
      {kStats, fp32, s.stats_dims(), s.stats_strides(), false, CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC,
       CUDNN_ATTR_OPERATION_SDPA_BWD_STATSDESC},
      {kDO, bf16, dims, row_strides, true, CUDNN_ATTR_OPERATION_SDPA_BWD_DODDESC,
       CUDNN_ATTR_OPERATION_SDPA_BWD_DODDESC},
      {kDQ, bf16, dims, qkv_strides, true, CUDNN_ATTR_OPERATION_SDPA_BWD_DQDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_DQDESC},
      {kDK, bf16, dims, qkv_strides, true, CUDNN_ATTR_OPERATION_SDPA_BWD_DKDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_DKDESC},
      {kDV, bf16, dims, qkv_strides, true, CUDNN_ATTR_OPERATION_SDPA_BWD_DVDESC, CUDNN_ATTR_OPERATION_SDPA_BWD_DVDESC},
  };
  const bool forward = direction == Direction::forward;
  Descriptor operation(forward ? CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR
                               : CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR);
  for (const Operand& operand : operands) {
    if (forward && operand.backward_only) continue;
    operation.set(forward ? operand.forward : operand.backward,
                  add(tensor(operand.uid, operand.type, operand.dims, operand.strides)));
  }
  operation.set(forward ? CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC : CUDNN_ATTR_OPERATION_SDPA_BWD_SCALEDESC,
                add(tensor(kScale, fp32, one, one, /*by_value=*/true)));
  operation.finalize("finalising the SDPA operation");
  const Descriptor& op = add(std::move(operation));

  Descriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  const cudnnBackendDescriptor_t ops[1] = {op.get()};
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops, 1);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle);
  graph.finalize("finalising the operation graph");
  const Descriptor& graph_kept = add(std::move(graph));
  plan.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  return choose_engine(handle, graph_kept, plan);
}

const Plan* CudnnAttention::State::plan(Direction direction, const Shape& s) {
  const Key key = {static_cast<int64_t>(direction), s.images, s.tokens, s.heads, s.D, s.token_stride,
                   s.image_stride};
  auto found = plans.find(key);
  if (found == plans.end()) {
    // Building may allocate (the workspace, cuDNN's own runtime compilation):
    // not allowed while the stream is being captured into a CUDA graph.
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    MONE_CUDA_CHECK(cudaStreamIsCapturing(context.stream(), &capturing));
    if (capturing != cudaStreamCaptureStatusNone)
      throw CudaError("cuDNN attention: the plan for " + s.text() +
                      " was first asked for inside a CUDA graph capture; run the step once uncaptured first");
    found = plans.emplace(key, Plan{}).first;
    Plan& plan = found->second;
    const std::string what = std::string(direction == Direction::forward ? "forward" : "backward") + " (" +
                             s.text() + "): ";
    try {
      const std::string engine = build(direction, s, plan);
      if (plan.workspace_bytes > 0)
        plan.workspace = DeviceBuffer(static_cast<size_t>(plan.workspace_bytes), "cuDNN attention workspace");
      report.push_back(what + "cuDNN " + engine);
    } catch (const Declined& declined) {
      plan.execution.reset();
      report.push_back(what + "our fused kernel, cuDNN declined: " + declined.what());
    } catch (...) {
      // Any other failure (the workspace allocation) must not leave a plan
      // behind whose workspace was never provided.
      plans.erase(found);
      throw;
    }
  }
  return found->second.execution ? &found->second : nullptr;
}

void CudnnAttention::State::execute(const Plan& plan,
                                    std::initializer_list<std::pair<Uid, const void*>> bindings) const {
  std::vector<int64_t> uids;
  std::vector<void*> pointers;
  for (const auto& [uid, pointer] : bindings) {
    uids.push_back(uid);
    pointers.push_back(const_cast<void*>(pointer));
  }
  uids.push_back(kScale);
  pointers.push_back(const_cast<float*>(&plan.scale));  // by value: a host pointer
  void* workspace_pointer = plan.workspace.data();
  try {
    Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), static_cast<int64_t>(uids.size()));
    pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers.data(),
             static_cast<int64_t>(pointers.size()));
    pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace_pointer);
    pack.finalize("finalising the variant pack");
    const cudnnStatus_t status = cudnnBackendExecute(handle, plan.execution->get(), pack.get());
    if (status != CUDNN_STATUS_SUCCESS) throw Declined("cudnnBackendExecute: " + cudnn_message(status));
  } catch (const Declined& failure) {
    // The plan was accepted: a failure now is an error, not a fallback.
    throw CudaError(std::string("cuDNN attention failed: ") + failure.what());
  }
}

CudnnAttention::CudnnAttention(const DeviceContext& context) : state_(std::make_unique<State>(context)) {
  const cudnnStatus_t created = cudnnCreate(&state_->handle);
  if (created != CUDNN_STATUS_SUCCESS) throw CudaError("cudnnCreate: " + cudnn_message(created));
  const cudnnStatus_t streamed = cudnnSetStream(state_->handle, context.stream());
  if (streamed != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(state_->handle);
    throw CudaError("cudnnSetStream: " + cudnn_message(streamed));
  }
}

CudnnAttention::~CudnnAttention() {
  state_->plans.clear();  // plans before the handle they were built with
  cudnnDestroy(state_->handle);
}

namespace {
Shape shape_of(const TokenLayout& layout, int64_t heads, int64_t D) { return {HeadView::of(layout, heads, D)}; }

// The tensors promise cuDNN 16-byte aligned bf16 operands (and 4-byte
// aligned stats); k and v start D channels into each qkv row. Where a pointer
// breaks the promise (D not a multiple of 8, or an offset buffer), our kernel
// runs instead of a cuDNN engine reading misaligned memory.
bool aligned(std::initializer_list<const void*> bf16_operands, const float* stats) {
  for (const void* p : bf16_operands)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return reinterpret_cast<uintptr_t>(stats) % alignof(float) == 0;
}
}  // namespace

bool CudnnAttention::forward(const __nv_bfloat16* qkv, const TokenLayout& layout, int64_t heads, int64_t D,
                             __nv_bfloat16* out, float* lse) {
  if (!aligned({qkv, qkv + D, qkv + 2 * D, out}, lse)) return false;
  const Plan* plan = state_->plan(Direction::forward, shape_of(layout, heads, D));
  if (!plan) return false;
  state_->execute(*plan, {{kQ, qkv}, {kK, qkv + D}, {kV, qkv + 2 * D}, {kO, out}, {kStats, lse}});
  return true;
}

bool CudnnAttention::backward(const __nv_bfloat16* dout, const __nv_bfloat16* qkv, const __nv_bfloat16* out,
                              const float* lse, const TokenLayout& layout, int64_t heads, int64_t D,
                              __nv_bfloat16* dqkv) {
  if (!aligned({qkv, qkv + D, qkv + 2 * D, out, dout, dqkv, dqkv + D, dqkv + 2 * D}, lse)) return false;
  const Plan* plan = state_->plan(Direction::backward, shape_of(layout, heads, D));
  if (!plan) return false;
  state_->execute(*plan, {{kQ, qkv},
                          {kK, qkv + D},
                          {kV, qkv + 2 * D},
                          {kO, out},
                          {kStats, lse},
                          {kDO, dout},
                          {kDQ, dqkv},
                          {kDK, dqkv + D},
                          {kDV, dqkv + 2 * D}});
  return true;
}

const std::vector<std::string>& CudnnAttention::report() const { return state_->report; }

}  // namespace mone::cuda
