# The CUDA backend: compiled whenever nvcc is found, so it cannot rot on
# machines without a GPU (its tests then skip). Sets MONE_HAVE_CUDA, and
# MONE_HAVE_CUDNN / MONE_HAVE_NCCL with the imported targets mone_cudnn and
# mone_nccl when those libraries are found.
#
#   MONE_CUDA=AUTO|ON|OFF      AUTO builds it when nvcc is found; ON requires it
#   CMAKE_CUDA_ARCHITECTURES   default "80;90" (A100, H100/H200)
#   CUDNN_ROOT, NCCL_ROOT      install prefixes, e.g. a pip package's
#                              site-packages/nvidia/cudnn and .../nvidia/nccl
set(MONE_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON (required), OFF")
set_property(CACHE MONE_CUDA PROPERTY STRINGS AUTO ON OFF)
set(MONE_HAVE_CUDA OFF)
set(MONE_HAVE_CUDNN OFF)
set(MONE_HAVE_NCCL OFF)

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

# Finds a library shipped either with the toolkit or as a pip package, whose
# lib/ holds only the versioned name (libcudnn.so.9, libnccl.so.2).
function(mone_find_cuda_library prefix header library soname root_var)
  find_path(${prefix}_INCLUDE_DIR ${header}
    HINTS ${${root_var}} $ENV{${root_var}} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES include)
  find_library(${prefix}_LIBRARY NAMES ${library} ${soname}
    HINTS ${${root_var}} $ENV{${root_var}} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES lib lib64)
  if(${prefix}_INCLUDE_DIR AND ${prefix}_LIBRARY)
    set(${prefix}_FOUND ON PARENT_SCOPE)
    message(STATUS "mone: ${library}: ${${prefix}_LIBRARY}")
  else()
    set(${prefix}_FOUND OFF PARENT_SCOPE)
    message(STATUS "mone: ${library} not found (set ${root_var} to its install prefix)")
  endif()
endfunction()

if(MONE_HAVE_CUDA)
  mone_find_cuda_library(CUDNN cudnn.h cudnn libcudnn.so.9 CUDNN_ROOT)
  if(CUDNN_FOUND)
    # Found for the fused attention through cuDNN's graph API (docs/cuda.md:
    # not written yet; the own fused kernel is what runs).
    add_library(mone_cudnn INTERFACE)
    target_include_directories(mone_cudnn INTERFACE ${CUDNN_INCLUDE_DIR})
    target_link_libraries(mone_cudnn INTERFACE ${CUDNN_LIBRARY})
    set(MONE_HAVE_CUDNN ON)
  endif()
  mone_find_cuda_library(NCCL nccl.h nccl libnccl.so.2 NCCL_ROOT)
  if(NCCL_FOUND)
    add_library(mone_nccl INTERFACE)
    target_include_directories(mone_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(mone_nccl INTERFACE ${NCCL_LIBRARY})
    set(MONE_HAVE_NCCL ON)
  endif()
endif()
