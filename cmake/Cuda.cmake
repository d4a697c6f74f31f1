# The CUDA backend: compiled whenever nvcc is found, so it cannot rot on
# machines without a GPU (its tests then skip). Sets MONE_HAVE_CUDA, and
# MONE_HAVE_NCCL with the target mone_nccl when NCCL is found, and
# MONE_HAVE_CUDNN with the target mone_cudnn when a cuDNN with the fused
# attention operations is found.
#
#   MONE_CUDA=AUTO|ON|OFF      AUTO builds it when nvcc is found; ON requires it
#   CMAKE_CUDA_ARCHITECTURES   default "80;90" (A100, H100/H200)
#   NCCL_ROOT, CUDNN_ROOT      install prefixes, e.g. the pip packages'
#                              site-packages/nvidia/nccl and .../nvidia/cudnn
set(MONE_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON (required), OFF")
set_property(CACHE MONE_CUDA PROPERTY STRINGS AUTO ON OFF)
set(MONE_HAVE_CUDA OFF)
set(MONE_HAVE_NCCL OFF)
set(MONE_HAVE_CUDNN OFF)

if(MONE_CUDA STREQUAL "OFF")
  message(STATUS "mone: CUDA backend off (MONE_CUDA=OFF)")
else()
  # nvcc is rarely on PATH on these machines; /usr/local/cuda is where it lives.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures to compile for")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(MONE_HAVE_CUDA ON)
    message(STATUS "mone: CUDA backend on (CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(MONE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MONE_CUDA=ON but no CUDA compiler was found: set CMAKE_CUDA_COMPILER "
                        "(e.g. /usr/local/cuda/bin/nvcc) or CUDACXX")
  else()
    message(STATUS "mone: no CUDA compiler found, building without the CUDA backend")
  endif()
endif()

# NCCL, shipped either with the toolkit or as a pip package whose lib/ holds
# only the versioned name (libnccl.so.2).
# <NAME>_INCLUDE_DIR and <NAME>_LIBRARY: a header and a library looked for
# under <NAME>_ROOT (variable or environment) first, then the toolkit's folders.
function(mone_find_cuda_library name header)
  find_path(${name}_INCLUDE_DIR ${header}
    HINTS ${${name}_ROOT} $ENV{${name}_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES include)
  find_library(${name}_LIBRARY NAMES ${ARGN}
    HINTS ${${name}_ROOT} $ENV{${name}_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES lib lib64)
endfunction()

if(MONE_HAVE_CUDA)
  mone_find_cuda_library(NCCL nccl.h nccl libnccl.so.2)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    add_library(mone_nccl INTERFACE)
    target_include_directories(mone_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(mone_nccl INTERFACE ${NCCL_LIBRARY})
    set(MONE_HAVE_NCCL ON)
    message(STATUS "mone: nccl: ${NCCL_LIBRARY}")
  else()
    message(STATUS "mone: nccl not found (set NCCL_ROOT to its install prefix)")
  endif()
endif()

# cuDNN, for attention through its fused SDPA operations
# (model/cuda/attention_cudnn.h). They are recent additions to the backend
# graph API, so the headers found are checked for them; without them the
# model uses its own attention kernel everywhere.
if(MONE_HAVE_CUDA)
  mone_find_cuda_library(CUDNN cudnn_graph.h cudnn libcudnn.so.9)
  if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_INCLUDES ${CUDNN_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
    check_cxx_source_compiles([[
      #include <cudnn.h>
      int main() {
        return CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR + CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR +
               CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC + CUDNN_ATTR_OPERATION_SDPA_BWD_DODDESC;
      }]] MONE_CUDNN_HAS_SDPA)
    unset(CMAKE_REQUIRED_INCLUDES)
  endif()
  if(MONE_CUDNN_HAS_SDPA)
    add_library(mone_cudnn INTERFACE)
    target_include_directories(mone_cudnn INTERFACE ${CUDNN_INCLUDE_DIR})
    target_link_libraries(mone_cudnn INTERFACE ${CUDNN_LIBRARY})
    set(MONE_HAVE_CUDNN ON)
    message(STATUS "mone: cudnn: ${CUDNN_LIBRARY} (fused attention on)")
  elseif(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    message(STATUS "mone: cudnn at ${CUDNN_INCLUDE_DIR} lacks the SDPA operations: our attention kernel only")
  else()
    message(STATUS "mone: cudnn not found (set CUDNN_ROOT to its install prefix): our attention kernel only")
  endif()
endif()
