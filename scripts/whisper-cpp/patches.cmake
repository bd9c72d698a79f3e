# callqa's changes to the whisper.cpp that whisper-rs-sys vendors (no fork, no copy of its 14 MB
# of sources in this repository). .cargo/config.toml names this file as
# CMAKE_PROJECT_ggml_INCLUDE; whisper-rs-sys hands every CMAKE_* variable to whisper.cpp's
# CMake, which includes the file when ggml's project() is configured. By then whisper-rs-sys has
# copied the sources into its OUT_DIR, so the patches change that private copy only.
# Each *.patch here applies once (CMake configures again whenever whisper-rs-sys's build script
# reruns); one that no longer applies, after a whisper-rs-sys upgrade, stops the build with its
# name. That build script does not watch this folder: scripts/setup.sh cleans whisper-rs-sys in
# any target folder whose copy lacks one of these patches.
file(GLOB callqa_patches "${CMAKE_CURRENT_LIST_DIR}/*.patch")
foreach(callqa_patch IN LISTS callqa_patches)
  get_filename_component(callqa_patch_name "${callqa_patch}" NAME)
  execute_process(
    COMMAND patch -p1 --reverse --dry-run --force --silent -i "${callqa_patch}"
    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}" RESULT_VARIABLE callqa_not_applied OUTPUT_QUIET ERROR_QUIET)
  if(callqa_not_applied)
    execute_process(
      COMMAND patch -p1 --forward --silent -i "${callqa_patch}"
      WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}" RESULT_VARIABLE callqa_failed)
    if(callqa_failed)
      message(FATAL_ERROR "callqa: ${callqa_patch_name} does not apply to this whisper.cpp (${CMAKE_SOURCE_DIR}): update the patch for the whisper-rs-sys version in Cargo.lock")
    endif()
    message(STATUS "callqa: applied ${callqa_patch_name}")
  endif()
endforeach()
