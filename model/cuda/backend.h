// The CUDA backend as its users outside model/ see it (the trainer's CUDA
// training backend, the GPU benchmark, the device tests): the device model,
// its optimizer, batch upload, step graphs, device memory and errors. One
// include, so the files inside model/cuda can be rearranged without
// touching them.
#pragma once

#include "model/cuda/adamw.h"         // DeviceAdamW, clip_grad_norm, scale_gradients
#include "model/cuda/batch_upload.h"  // BatchUpload: pinned host slot -> device
#include "model/cuda/check.h"         // MONE_CUDA_CHECK, CudaError, cuda_device_available
#include "model/cuda/context.h"       // DeviceContext: stream, cuBLASLt, scratch
#include "model/cuda/device_memory.h" // DeviceBuffer, DeviceArena, describe_bytes
#include "model/cuda/gemm.h"          // bf16
#include "model/cuda/model_cuda.h"    // DeviceModel
#include "model/cuda/step_graph.h"    // StepGraphs, StepKey
