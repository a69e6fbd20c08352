"""baike: a distributed crawler of Baidu Baike on Scrapy and scrapy-redis."""
