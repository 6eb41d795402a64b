// Function pointers only: the loader is dlopen'ed (see ParScaleVulkan/VulkanLoader.swift).
#define VK_NO_PROTOTYPES 1
#include <vulkan/vulkan.h>
#include <dlfcn.h>
